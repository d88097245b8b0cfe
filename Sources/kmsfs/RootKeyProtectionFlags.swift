import ArgumentParser
import Foundation
import KMSFSVolume

/// How `kmsfs init` protects a new embedded store's root key. Without a choice: a passphrase
/// asked on the terminal; with no terminal, unprotected — and said so loudly.
struct RootKeyProtectionFlags: ParsableArguments {
    @Option(help: "Protect it with the passphrase in this file (all of it, less a trailing line break; mode 0600; scrypt, 128 MiB).")
    var passphraseFile: String?
    @Option(help: "Keep it in this new file instead (created 0600), kept apart from the volume: another disk, a USB key.")
    var rootKeyFile: String?
    @Option(help: "Seal it with systemd-creds (the TPM2 where there is one) as this credential, for LoadCredentialEncrypted=.")
    var rootKeyCredential: String?
    @Option(help: "Where the encrypted credential goes.")
    var credentialStore: String = RootKeyProtection.defaultCredentialStore
    @Flag(help: "Keep it unprotected beside the store (root.key): for demos and tests; a copy of the store decrypts every file.")
    var unprotected = false

    func validate() throws {
        let chosen = [passphraseFile != nil, rootKeyFile != nil, rootKeyCredential != nil, unprotected].filter { $0 }.count
        guard chosen <= 1 else {
            throw ValidationError("choose one of --passphrase-file, --root-key-file, --root-key-credential, --unprotected")
        }
    }

    /// The protection for a new store.
    func chosen(forNewStore store: EmbeddedStore) throws -> RootKeyProtection {
        if let passphraseFile { return .passphrase(try Passphrase.read(file: passphraseFile)) }
        if let rootKeyFile { return .keyFile(URL(fileURLWithPath: rootKeyFile).standardizedFileURL.path) }
        if let rootKeyCredential {
            return .credential(name: rootKeyCredential, store: URL(fileURLWithPath: credentialStore).standardizedFileURL.path)
        }
        if unprotected { return .unprotected }
        guard Passphrase.canAsk else {
            FileHandle.standardError.write(Data("kmsfs init: no terminal to ask a passphrase on, and no protection chosen\n".utf8))
            return .unprotected
        }
        return .passphrase(try Passphrase.ask("New passphrase for the key store \(store.directory): ", confirm: true))
    }

    /// Said once a store is protected by a credential on a machine without a TPM2.
    static func warnWithoutTPM(_ protection: RootKeyProtection) {
        guard case .credential = protection, !RootKeyProtection.credentialsUseTPM2 else { return }
        FileHandle.standardError.write(Data("""
            WARNING: this machine has no TPM2: systemd-creds sealed the root key with /var/lib/systemd/credential.secret,
            WARNING: which is on this disk. A copy of the whole disk decrypts the volume; a copy of the volume and its store alone does not.

            """.utf8))
    }

    /// Options that choose a protection, when the store already has one (a store shared by volumes).
    var choosesProtection: Bool { rootKeyCredential != nil || unprotected }

    static func warnUnprotected(_ store: EmbeddedStore) {
        FileHandle.standardError.write(Data("""
            WARNING: the root key is stored UNPROTECTED in \(store.rootKeyFile).
            WARNING: anyone with a copy of \(store.directory) and the volume reads every file (a stolen disk, a backup).
            WARNING: protect it: kmsfs protect CIPHERDIR --to passphrase (or --to key-file:PATH, --to credential:NAME)

            """.utf8))
    }
}
