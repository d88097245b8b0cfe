import ArgumentParser
import Foundation
import KMSFSVolume

/// Where a command gets keys from: the same flags for mount, fsck, allow-key and protect.
/// (mount also takes each as `-o name=value`; flags win.)
struct KeyServiceFlags: ParsableArguments {
    @Option(help: "The remote key service (http://, https://, unix://; several instances separated by commas or semicolons, tried in turn when one fails); default: this machine's record of the volume, then AWS_ENDPOINT_URL_KMS, ~/.aws.")
    var kmsEndpoint: String?
    @Option(help: "AWS region of a remote key service.") var region: String?
    @Option(help: "AWS profile of a remote key service.") var profile: String?
    @Option(help: "The embedded key store's directory (default: CIPHERDIR.keys).") var keyStore: String?
    @Option(help: "Read the passphrase of the embedded store's root key from this file (all of it, less a trailing line break; mode 0600); else it is asked on the terminal.")
    var passphraseFile: String?
    @Option(help: "The embedded store's root key file, if it moved from where kmsfs init put it.")
    var rootKeyFile: String?

    /// The options as given, before any passphrase is read.
    var given: KeyServiceOptions {
        KeyServiceOptions(endpoint: kmsEndpoint, region: region, profile: profile, keyStore: keyStore,
                          unlock: RootKeyUnlock(keyFile: rootKeyFile))
    }

    /// The options with the root key's passphrase read, if the volume's store needs one.
    func resolved(cipherDirectory: String, passphraseFile: String? = nil) throws -> KeyServiceOptions {
        try Self.unlocking(given, cipherDirectory: cipherDirectory, passphraseFile: passphraseFile ?? self.passphraseFile)
    }

    /// Reads the passphrase from `passphraseFile` (else `$KMSFS_PASSPHRASE_FILE`), or asks on the terminal, when the volume's
    /// embedded store is protected by one; otherwise returns `options` unchanged. A remote
    /// volume has no store beside it: nothing is asked.
    static func unlocking(_ options: KeyServiceOptions, cipherDirectory: String, passphraseFile: String?) throws -> KeyServiceOptions {
        var options = options
        // The environment's form is for systemd units: Environment=KMSFS_PASSPHRASE_FILE=%d/name.
        if let passphraseFile = passphraseFile ?? ProcessInfo.processInfo.environment["KMSFS_PASSPHRASE_FILE"] {
            options.unlock.passphrase = OneTimePassphrase(try Passphrase.read(file: passphraseFile))
            return options
        }
        let store = EmbeddedStore.of(cipherDirectory: cipherDirectory, options: options)
        if (try? store.protectionKind()) == .passphrase, Passphrase.canAsk {
            options.unlock.passphrase = OneTimePassphrase(try Passphrase.ask("Passphrase for \(cipherDirectory): "))
        }
        return options
    }
}
