import ArgumentParser
import Foundation
import KMSFSFuse
import KMSFSVolume

/// `kmsfs init CIPHERDIR`: a new, empty volume.
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a kmsfs volume in an empty backing directory."
    )

    @Argument(help: "The backing directory (created if absent; must be empty).")
    var cipherDirectory: String

    @Option(help: "The KMS key for new files (ID, ARN or alias). Default: a new key on the embedded service; alias/aws/kmsfs on a remote one.")
    var kmsKey: String?

    @Option(help: "A remote key service (http://, https://, unix://); default: the embedded one.")
    var kmsEndpoint: String?

    @Option(help: "AWS region for a remote key service (else AWS_REGION, the profile, ...).")
    var region: String?

    @Option(help: "AWS profile for a remote key service.")
    var profile: String?

    @Option(help: "Plaintext bytes per chunk: a power of two from 4096 to 1048576.")
    var chunkSize: Int = 16384

    @Option(help: "Where the embedded key store goes (default: CIPHERDIR.keys beside the volume; elsewhere, mounts need --key-store).")
    var keyStore: String?

    @Option(name: .customLong("allow-key"), help: "A key that directories may name for their new files (user.kmsfs.key-id); may repeat.")
    var allowedKeys: [String] = []

    @Flag(help: "Keep gaps of growing files as holes (fast 10 GiB truncates) at the price of zeroed chunks reading as zeros unauthenticated.")
    var sparse = false

    @Flag(help: "Derive new files' keys from bucket keys, one KMS call per --bucket-key-max-files files, and a key attribute that fits in an ext4 inode (docs/ARCHITECTURE.md: what the audit trail loses).")
    var bucketKeys = false

    @Flag(help: "Keep file and directory names as they are in the backing directory. By default they are encrypted (AES-256-SIV under a name key from the key service, bound to each directory; docs/FORMAT.md); and so are symbolic-link targets and user. extended attributes.")
    var plaintextNames = false

    /// Accepted for scripts written while encryption was opt-in; it is the default.
    @Flag(help: .hidden)
    var encryptNames = false

    @Option(help: "Seconds a bucket key serves new files.")
    var bucketKeyMaxAge = BucketKeyPolicy.default.maxAge

    @Option(help: "New files one bucket key serves.")
    var bucketKeyMaxFiles = BucketKeyPolicy.default.maxFiles

    @OptionGroup(title: "Protecting the embedded store's root key (default: a passphrase asked on the terminal)")
    var protection: RootKeyProtectionFlags

    func validate() throws {
        guard BucketKeyPolicy(maxAge: bucketKeyMaxAge, maxFiles: bucketKeyMaxFiles).isValid else {
            throw ValidationError("--bucket-key-max-age must be 1 to \(BucketKeyPolicy.limits.age.upperBound) seconds, --bucket-key-max-files 1 to \(BucketKeyPolicy.limits.files.upperBound)")
        }
    }

    func run() throws {
        var options = VolumeInitializer.Options()
        options.keyID = kmsKey
        options.chunkSize = chunkSize
        options.keyStoreDirectory = keyStore
        options.allowedKeyIDs = allowedKeys
        options.holes = sparse ? .sparse : .sealed
        options.encryptedNames = !plaintextNames
        if bucketKeys { options.bucketKeys = BucketKeyPolicy(maxAge: bucketKeyMaxAge, maxFiles: bucketKeyMaxFiles) }
        if kmsEndpoint != nil || profile != nil || region != nil {
            options.remote = .init(endpoint: kmsEndpoint, region: region, profile: profile)
        }
        do {
            let store = EmbeddedStore.of(cipherDirectory: cipherDirectory, options: KeyServiceOptions(keyStore: keyStore))
            if options.remote == nil {
                let kind = try store.protectionKind()
                if kind == .none {
                    options.rootKeyProtection = try protection.chosen(forNewStore: store)
                } else {
                    // A store that several volumes share: unlock it as a mount would.
                    guard !protection.choosesProtection else {
                        throw CommandFailure("the key store \(store.directory) exists, protected by \(kind): it keeps that (change it with kmsfs protect)")
                    }
                    options.unlock = try KeyServiceFlags.unlocking(
                        KeyServiceOptions(keyStore: keyStore, unlock: RootKeyUnlock(keyFile: protection.rootKeyFile)),
                        cipherDirectory: cipherDirectory, passphraseFile: protection.passphraseFile).unlock
                }
            }
            let volume = try VolumeInitializer.initialize(cipherDirectory: cipherDirectory, options: options)
            print("volume: \(cipherDirectory) (id \(volume.volumeID), chunk size \(volume.chunkSize))")
            print("default key: \(volume.defaultKeyID)")
            if case .embedded = volume.keyService {
                let kind = try store.protectionKind()
                print("key store: \(store.directory) (root key protected by \(kind))")
                if kind == .unprotected { RootKeyProtectionFlags.warnUnprotected(store) }
                RootKeyProtectionFlags.warnWithoutTPM(options.rootKeyProtection)
                print("back up the key store with the volume: without it no file can be decrypted")
            }
        } catch {
            throw CommandFailure("kmsfs init: \(error)")
        }
    }
}

/// A failure to report as one line (no usage text: the command line was fine).
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

