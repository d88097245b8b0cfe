import ArgumentParser
import Foundation
import KMSEngine

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
        guard !FileManager.default.fileExists(atPath: storeOptions.store) else {
            throw ValidationError("\(storeOptions.store) already exists: kmsd init only creates new stores")
        }
        let directory = (storeOptions.store as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory.isEmpty ? "." : directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        if case let .file(path) = storeOptions.rootKeySource, !FileManager.default.fileExists(atPath: path) {
            let key = try RootKey.generate()
            guard FileManager.default.createFile(atPath: path, contents: Data(key.hexEncoded()), attributes: [.posixPermissions: 0o600]) else {
                throw ValidationError("cannot write the root key to \(path)")
            }
            print("root key: generated into \(path) (mode 0600); back it up: without it the store cannot be opened")
        }
        let engine = try storeOptions.openEngine()
        let created = try engine.createAccount(accountID: account, name: accountName)
        let key = try engine.createAccessKey(account: created.accountID).key
        try engine.flushAudit()
        print("key store: \(storeOptions.store)")
        print("account: \(created.accountID) (\(created.name))")
        print("access key id: \(key.record.accessKeyID)")
        print("secret access key: \(key.secretAccessKey)")
        print("(the secret is shown once; kmsd admin create-access-key makes more)")
    }
}
