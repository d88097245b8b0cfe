import ArgumentParser
import Foundation
import KMSEngine
import KMSKeyStores
import KMSStore

/// Where the key store is and where its root key comes from; shared by every subcommand.
struct StoreOptions: ParsableArguments {
    @Option(help: "A YAML configuration file; flags override its settings.")
    var config: String?

    @Option(name: .customLong("store"), help: """
        The key store: an SQLite file, or a PostgreSQL database (postgres://USER@HOST/DB, any libpq URI; \
        its password from ~/.pgpass or PGPASSFILE rather than the URI). Default: /var/lib/kmsd/keys.sqlite.
        """)
    var storeFlag: String?

    @Option(help: "Read the root key from this file (32 raw bytes or 64 hex digits).")
    var rootKeyFile: String?

    @Option(help: "Read the root key from this inherited file descriptor.")
    var rootKeyFD: Int32?

    @Option(help: "Read the root key from this systemd credential ($CREDENTIALS_DIRECTORY/<name>).")
    var rootKeyCredential: String?

    @Option(help: """
        The root key the store may be rotated to (`kmsd admin rotate-root-key`), from this file: an instance \
        given it takes up a rotation another instance of a shared store made, and opens a store rotated already.
        """)
    var nextRootKeyFile: String?

    @Option(help: "The next root key from this systemd credential ($CREDENTIALS_DIRECTORY/<name>).")
    var nextRootKeyCredential: String?

    @Option(help: """
        Keep the audit head in this file, outside the store: a store whose trail was cut or rolled back \
        no longer opens. Best where the store's writers cannot write. Default: beside the store, STORE.audit-anchor.
        """)
    var auditAnchor: String?

    @Option(help: """
        The Unix socket through which `kmsd admin` reaches a running kmsd (mode 0600). \
        Default: beside the store, STORE.admin.sock.
        """)
    var adminSocket: String?

    func validate() throws {
        let sources = [rootKeyFile != nil, rootKeyFD != nil, rootKeyCredential != nil].filter { $0 }.count
        guard sources <= 1 else { throw ValidationError("give one of --root-key-file, --root-key-fd, --root-key-credential") }
        guard nextRootKeyFile == nil || nextRootKeyCredential == nil else {
            throw ValidationError("give one of --next-root-key-file, --next-root-key-credential")
        }
    }

    /// The configuration file's settings, or none.
    func configFile() throws -> ConfigFile? { try config.map(ConfigFile.load) }

    var store: String {
        storeFlag ?? (try? configFile()?.store) ?? "/var/lib/kmsd/keys.sqlite"
    }

    var location: StoreLocation { StoreLocation(store) }

    /// The next root key, if one was given (flags, then the configuration file's `nextRootKey`).
    var nextRootKeySource: RootKey.Source? {
        if let nextRootKeyCredential { return .credential(nextRootKeyCredential) }
        if let nextRootKeyFile { return .file(nextRootKeyFile) }
        guard let configured = try? configFile()?.nextRootKey else { return nil }
        if let credential = configured.credential { return .credential(credential) }
        if let fd = configured.fd { return .fileDescriptor(fd) }
        return configured.file.map { .file($0) }
    }

    /// Where files that default to beside an SQLite store go for a PostgreSQL one.
    static let postgresStateDirectory = "/var/lib/kmsd"

    /// Flags first, then the configuration file, then `root.key` beside the store (for a
    /// PostgreSQL store, in /var/lib/kmsd: never in the database it protects).
    var rootKeySource: RootKey.Source {
        if let rootKeyFD { return .fileDescriptor(rootKeyFD) }
        if let rootKeyCredential { return .credential(rootKeyCredential) }
        if let rootKeyFile { return .file(rootKeyFile) }
        if let configured = try? configFile()?.rootKey {
            if let fd = configured.fd { return .fileDescriptor(fd) }
            if let credential = configured.credential { return .credential(credential) }
            if let file = configured.file { return .file(file) }
        }
        guard case .sqlite = location else { return .file(Self.postgresStateDirectory + "/root.key") }
        // A bare file name's directory is "" — the current directory, not the filesystem root.
        let directory = (store as NSString).deletingLastPathComponent
        return .file((directory.isEmpty ? "." : directory) + "/root.key")
    }

    @Option(help: "The PKCS#11 module whose tokens back AWS_CLOUDHSM custom key stores (the cluster ID names the token).")
    var pkcs11Module: String?

    @Option(help: "CA certificates (PEM) that external key store proxies' certificates are checked against (default: the system's).")
    var xksCABundle: String?

    var anchor: String { auditAnchor ?? (try? configFile()?.auditAnchor) ?? besideStore("audit-anchor") }

    var adminSocketPath: String { adminSocket ?? (try? configFile()?.adminSocket) ?? besideStore("admin.sock") }

    /// STORE.suffix for an SQLite store; /var/lib/kmsd/postgres.suffix for a PostgreSQL one.
    private func besideStore(_ suffix: String) -> String {
        guard case .sqlite = location else { return Self.postgresStateDirectory + "/postgres." + suffix }
        return store + "." + suffix
    }

    /// Runs an admin command: through the running kmsd's admin socket if one serves this store,
    /// else on the store itself (which then needs the root key).
    func runAdmin(_ request: AdminRequest) throws -> String {
        if let answer = try AdminSocket.send(request, to: adminSocketPath, storeOwner: storeOwner) {
            if let error = answer.error { throw CommandFailure(error) }
            return answer.output ?? ""
        }
        let engine = try openEngine()
        let output = try request.perform(on: engine)
        try engine.flushAudit()
        return output
    }

    /// The user who owns the store file, if it exists: the user kmsd runs as. For a PostgreSQL
    /// store, this user (an admin socket served by root or by oneself is kmsd's).
    var storeOwner: uid_t? {
        guard case .sqlite = location else { return getuid() }
        var info = stat()
        return stat(store, &info) == 0 ? info.st_uid : nil
    }

    func openEngine(scheduler: Bool = false, createAnchor: Bool = false, waitForWriter: Bool = false, shared: Bool = false,
                    onStoreLost: (@Sendable (String) -> Void)? = nil) throws -> KMSEngine {
        do {
            return try KMSEngine.open(path: store, rootKey: RootKey(loading: rootKeySource), nextRootKey: nextRootKeySource.map { try RootKey(loading: $0) },
                                      schedulerInterval: scheduler ? .seconds(60) : nil, auditAnchor: anchor, createAnchor: createAnchor,
                                      customKeyStores: KeyStoreConnector(pkcs11Module: pkcs11Module ?? (try? configFile()?.pkcs11Module) ?? nil,
                                                                         xksCABundle: xksCABundle ?? (try? configFile()?.xksCABundle) ?? nil),
                                      waitForWriter: waitForWriter, shared: shared, onStoreLost: onStoreLost)
        } catch {
            let hint = "\(error)".contains("in use by another")
                ? " — kmsd is running, but not answering on its admin socket \(adminSocketPath) (started with another --admin-socket?)"
                : ""
            throw CommandFailure("cannot open the key store \(location): \(error)\(hint)")
        }
    }
}
