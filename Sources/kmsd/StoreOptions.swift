import ArgumentParser
import Foundation
import KMSEngine

/// Where the key store is and where its root key comes from; shared by every subcommand.
struct StoreOptions: ParsableArguments {
    @Option(help: "The key store (an SQLite file).")
    var store: String = "/var/lib/kmsd/keys.sqlite"

    @Option(help: "Read the root key from this file (32 raw bytes or 64 hex digits).")
    var rootKeyFile: String?

    @Option(help: "Read the root key from this inherited file descriptor.")
    var rootKeyFD: Int32?

    @Option(help: "Read the root key from this systemd credential ($CREDENTIALS_DIRECTORY/<name>).")
    var rootKeyCredential: String?

    func validate() throws {
        let sources = [rootKeyFile != nil, rootKeyFD != nil, rootKeyCredential != nil].filter { $0 }.count
        guard sources <= 1 else { throw ValidationError("give one of --root-key-file, --root-key-fd, --root-key-credential") }
    }

    var rootKeySource: RootKey.Source {
        if let rootKeyFD { return .fileDescriptor(rootKeyFD) }
        if let rootKeyCredential { return .credential(rootKeyCredential) }
        return .file(rootKeyFile ?? (store as NSString).deletingLastPathComponent + "/root.key")
    }

    func openEngine(scheduler: Bool = false) throws -> KMSEngine {
        do {
            return try KMSEngine.open(path: store, rootKey: RootKey(loading: rootKeySource),
                                      schedulerInterval: scheduler ? .seconds(60) : nil)
        } catch {
            throw ValidationError("cannot open the key store \(store): \(error)")
        }
    }
}
