import ArgumentParser
import Foundation
import KMSEngine
import KMSFSCrypto
import KMSFSVolume

/// `kmsfs protect CIPHERDIR --to FORM`: changes how the embedded store's root key is protected
/// (a new passphrase, a key file elsewhere, a systemd credential). The key itself stays, so no
/// file or key in the store changes; copies of the store made before keep the old protection.
/// With `--new-root-key`, the store moves to a new root key as well (every sealed row sealed
/// again): for when the old key itself may be known.
struct ProtectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "protect",
        abstract: "Change how an unmounted volume's embedded key store protects its root key.",
        discussion: """
        FORM is passphrase (asked on the terminal, or --new-passphrase-file), key-file:PATH, credential:NAME \
        or unprotected. The current protection is unlocked as a mount would (--passphrase-file, --root-key-file). \
        Backups and copies of the store made before keep the protection they had. \
        With --new-root-key the store is also moved to a new root key (a new key file or credential must be \
        named: the old one opens nothing afterwards); interrupted, the volume still mounts, and the same \
        command run again finishes it.
        """
    )

    @Argument(help: "The volume's backing directory.") var cipherDirectory: String
    @Option(help: "The new protection: passphrase, key-file:PATH, credential:NAME or unprotected.") var to: String
    @Option(help: "Read the new passphrase from this file (as --passphrase-file).") var newPassphraseFile: String?
    @Option(help: "Where a new encrypted credential goes.") var credentialStore: String = RootKeyProtection.defaultCredentialStore
    @Flag(help: "Move the store to a new root key too (every key in it sealed again).") var newRootKey = false
    @OptionGroup var keyService: KeyServiceFlags

    func run() throws {
        do {
            // The lock a mount takes: the store is not re-protected under a running mount.
            let lock = try VolumeLock(cipherDirectory: cipherDirectory)
            defer { withExtendedLifetime(lock) {} }
            let options = try keyService.resolved(cipherDirectory: cipherDirectory)
            let store = EmbeddedStore.of(cipherDirectory: cipherDirectory, options: options)
            guard FileManager.default.fileExists(atPath: store.storePath) else {
                throw CommandFailure("no embedded key store at \(store.directory) (a volume on a remote key service has none; name a moved one with --key-store)")
            }
            let previous = try store.protectionKind()
            let protection: RootKeyProtection
            if newRootKey {
                protection = try newProtection(store: store)
                if let rotation = try store.rotateRootKey(options.unlock, to: protection) {
                    print("root key rotated from \(rotation.from) to \(rotation.to): \(rotation.materialVersions) key material versions "
                          + "sealed again, every record authenticated again")
                } else {
                    print("an interrupted rotation of the root key is finished")
                }
            } else {
                guard !store.hasPendingRootKey else {
                    throw CommandFailure("an interrupted `kmsfs protect --new-root-key` is not finished: run it again, with the same --to")
                }
                let rootKey = try store.loadRootKey(options.unlock)
                // Proves the key is this store's before anything is rewritten.
                _ = try KMSEngine.open(path: store.storePath, rootKey: rootKey, schedulerInterval: nil)
                protection = try newProtection(store: store)
                try store.keep(rootKey, as: protection)
            }
            let now = try store.protectionKind()
            print("key store: \(store.directory) (root key protected by \(now))")
            let held = newRootKey ? "the old root key" : "the root key"
            if case let .keyFile(path) = previous, now != previous {
                print("the key file \(path) still holds \(held): destroy it once no copy of the store needs it")
            }
            if case let .credential(name) = previous, now != previous {
                print("the sealed credential \(name) still holds \(held) on this machine: remove it once no copy of the store needs it")
            }
            if newRootKey { print("copies and backups of the store made before open under the old root key only") }
            RootKeyProtectionFlags.warnWithoutTPM(protection)
            if case .unprotected = protection { RootKeyProtectionFlags.warnUnprotected(store) }
        } catch let failure as CommandFailure {
            throw CommandFailure("kmsfs protect: \(failure.description)")
        } catch {
            throw CommandFailure("kmsfs protect: \(error)")
        }
    }

    private func newProtection(store: EmbeddedStore) throws -> RootKeyProtection {
        let (form, argument) = to.firstIndex(of: ":").map { (String(to[..<$0]), String(to[to.index(after: $0)...])) } ?? (to, "")
        switch form {
        case "passphrase":
            if let newPassphraseFile { return .passphrase(try Passphrase.read(file: newPassphraseFile)) }
            guard Passphrase.canAsk else { throw CommandFailure("no terminal to ask the new passphrase on: give --new-passphrase-file") }
            return .passphrase(try Passphrase.ask("New passphrase for \(store.directory): ", confirm: true))
        case "key-file" where !argument.isEmpty:
            try EmbeddedStore.refuseKeyFile(argument, inside: [cipherDirectory, store.directory])
            return .keyFile(URL(fileURLWithPath: argument).standardizedFileURL.path)
        case "credential" where !argument.isEmpty:
            return .credential(name: argument, store: URL(fileURLWithPath: credentialStore).standardizedFileURL.path)
        case "unprotected":
            return .unprotected
        default:
            throw CommandFailure("--to \(to): expected passphrase, key-file:PATH, credential:NAME or unprotected")
        }
    }
}
