import ArgumentParser
import Foundation
import KMSEngine
import KMSStore

/// `kmsd init`: a new key store, its root key, a first account and an access key for it.
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a key store, its root key (if absent), a first account and an access key."
    )

    @OptionGroup var storeOptions: StoreOptions

    @Option(help: "The first account's ID (12 digits); random if omitted.")
    var account: String?

    @Option(help: "The first account's name.")
    var accountName: String = "default"

    func run() throws {
        switch storeOptions.location {
        case .sqlite:
            guard !FileManager.default.fileExists(atPath: storeOptions.store) else {
                throw ValidationError("\(storeOptions.store) already exists: kmsd init only creates new stores")
            }
            let directory = (storeOptions.store as NSString).deletingLastPathComponent
            try FileManager.default.createDirectory(atPath: directory.isEmpty ? "." : directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        case let .postgres(url):
            let database = try PostgresDatabase(url: url)
            guard try database.query("SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'meta'").isEmpty else {
                throw ValidationError("\(storeOptions.location) already holds a key store: kmsd init only creates new stores")
            }
            if case let .file(path) = storeOptions.rootKeySource, storeOptions.rootKeyFile == nil {
                try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            }
        }
        if case let .file(path) = storeOptions.rootKeySource, !FileManager.default.fileExists(atPath: path) {
            let key = try RootKey.generate()
            // Created with its final mode, never replacing a file (O_EXCL): a secret is never
            // readable by others, not even between a create and a chmod.
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw ValidationError("cannot create the root key file \(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            let bytes = Array(key.hexEncoded())
            guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count, fsync(fd) == 0 else {
                throw ValidationError("cannot write the root key to \(path)")
            }
            print("root key: generated into \(path) (mode 0600); back it up: without it the store cannot be opened")
        }
        guard try !RootKey(loading: storeOptions.rootKeySource).isDegenerate else {
            throw ValidationError("the root key has every byte the same: not a key to make a store under")
        }
        let engine = try storeOptions.openEngine()
        let created = try engine.createAccount(accountID: account, name: accountName)
        let key = try engine.createAccessKey(account: created.accountID).key
        try engine.flushAudit()
        print("key store: \(storeOptions.location)")
        print("account: \(created.accountID) (\(created.name))")
        print("access key id: \(key.record.accessKeyID)")
        print("secret access key: \(key.secretAccessKey)")
        print("(the secret is shown once; kmsd admin create-access-key makes more)")
    }
}
