import Foundation
import KMSClient
import KMSEngine
import KMSFSCrypto
import KMSFSFormat

/// `kmsfs init`: a new volume in an empty backing directory.
public enum VolumeInitializer {
    /// The key a volume on a remote key service uses when `kmsfs init` is given none.
    public static let managedKeyAlias = "alias/aws/kmsfs"

    public struct Options: Sendable {
        /// The KMS key for new files (ID, ARN or alias); for the embedded service, a new key with
        /// the alias `alias/kmsfs/<volume ID>` when nil.
        public var keyID: String?
        /// A remote endpoint; the embedded service when nil (and no remote settings are given).
        public var remote: KeyServiceSettings.Remote?
        public var chunkSize: Int = FileHeader.defaultChunkSize
        /// Where the embedded key store goes; `<cipher directory>.keys` (beside the volume) when nil.
        public var keyStoreDirectory: String?
        /// Keys directories may name for their new files, besides the default key.
        public var allowedKeyIDs: [String] = []
        /// What gaps in growing files are made of.
        public var holes: HolePolicy = .sealed
        /// Bucket keys for new files (format version 4), or a data key per file (nil).
        public var bucketKeys: BucketKeyPolicy?
        /// Encrypt names (format version 5).
        public var encryptedNames = false
        /// How a new embedded store keeps its root key (the library's default is for tests; the
        /// command asks or warns).
        public var rootKeyProtection: RootKeyProtection = .unprotected
        /// What unlocks an existing store's root key (a store shared by several volumes).
        public var unlock = RootKeyUnlock()
        public init() {}
    }

    /// Creates the volume and returns its configuration.
    /// - Throws: ``VolumeError`` for a non-empty or initialized directory, or one without user
    ///   xattrs; ``KMSClientError`` if the key service refuses the key.
    @discardableResult
    public static func initialize(cipherDirectory: String, options: Options) throws -> VolumeConfiguration {
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: cipherDirectory, isDirectory: &isDirectory) {
            try FileManager.default.createDirectory(atPath: cipherDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } else if !isDirectory.boolValue {
            throw VolumeError.io("\(cipherDirectory) is not a directory")
        }
        let contents = try FileManager.default.contentsOfDirectory(atPath: cipherDirectory)
        if contents.contains(VolumeConfiguration.fileName) { throw VolumeError.alreadyInitialized(cipherDirectory) }
        guard contents.isEmpty else { throw VolumeError.notEmpty(cipherDirectory) }
        guard FileHeader.allowedChunkSizes.contains(options.chunkSize) else {
            throw VolumeError.io("chunk size \(options.chunkSize) is not a power of two from 4096 to 1048576")
        }
        try XattrProbe.check(directory: cipherDirectory)

        let volumeID = UUID().uuidString.lowercased()
        let settings: KeyServiceSettings
        let client: any KMSClient
        let keyID: String
        if let remote = options.remote {
            // Without --kms-key, the service's AWS-managed key, as AWS services default to theirs:
            // kmsd makes alias/aws/kmsfs on first use; another service must already have it.
            let given = options.keyID ?? Self.managedKeyAlias
            client = try HTTPKMSClient(configuration: AWSConfiguration.resolve(.init(endpoint: remote.endpoint, region: remote.region,
                                                                                    profile: remote.profile)))
            let described: Result<KeyDescription, KMSClientError> = Result { () throws(KMSClientError) in try client.describeKey(keyID: given) }
            if case let .failure(error) = described, options.keyID == nil, error.kind == .notFound {
                throw VolumeError.keyService("the key service has no \(Self.managedKeyAlias) (kmsd makes it on first use; another service may not): give --kms-key")
            }
            keyID = try described.get().keyARN
            settings = .remote(remote)
        } else {
            let store = EmbeddedStore.of(cipherDirectory: cipherDirectory, options: KeyServiceOptions(keyStore: options.keyStoreDirectory))
            try FileManager.default.createDirectory(atPath: store.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let embedded = KeyServiceSettings.Embedded(account: try randomAccount(), region: "local")
            let rootKey: RootKey
            if try store.protectionKind() == .none {
                if case let .keyFile(path) = options.rootKeyProtection {
                    try EmbeddedStore.refuseKeyFile(path, inside: [cipherDirectory, store.directory])
                }
                rootKey = try RootKey.generate()
                try store.keep(rootKey, as: options.rootKeyProtection)
            } else {
                rootKey = try store.loadRootKey(options.unlock)
            }
            if !FileManager.default.fileExists(atPath: store.storePath) {
                // SQLite takes an empty file for a new database and gives its journal files the
                // database's mode: 0600 from the first byte.
                try AtomicFile.write([], to: store.storePath, mode: 0o600)
            }
            let engine = try KMSEngine.open(path: store.storePath, rootKey: rootKey, schedulerInterval: nil)
            let caller = Caller(account: embedded.account, region: embedded.region, viaService: "kmsfs")
            if let given = options.keyID {
                keyID = try engine.describeKey(keyID: given, caller: caller).keyMetadata.arn
            } else {
                var request = CreateKeyRequest()
                request.description = "kmsfs volume \(volumeID)"
                let key = try engine.createKey(request, caller: caller).keyMetadata
                try engine.createAlias(aliasName: "alias/kmsfs/\(volumeID)", targetKeyID: key.keyId, caller: caller)
                keyID = key.arn
            }
            client = EmbeddedKMSClient(engine: engine, caller: caller)
            settings = .embedded(embedded)
        }
        var configuration = VolumeConfiguration(volumeID: volumeID, chunkSize: options.chunkSize, defaultKeyID: keyID,
                                                allowedKeyIDs: options.allowedKeyIDs, holes: options.holes, keyService: settings)
        if let bucketKeys = options.bucketKeys {
            configuration.bucketKeys = bucketKeys
            configuration.formatVersion = VolumeConfiguration.bucketKeysFormatVersion
            // Made now, 0700: nobody else can plant one before the first file.
            try BucketRecord.makeDirectory(cipherDirectory: cipherDirectory)
        }
        if options.encryptedNames {
            configuration.formatVersion = VolumeConfiguration.encryptedNamesFormatVersion
            try VolumeNames.generate(&configuration, client: client)
        }
        for allowed in options.allowedKeyIDs {
            // A key new files cannot be made under would fail every create below its directory.
            do { _ = try client.describeKey(keyID: allowed) } catch {
                throw VolumeError.keyService("--allow-key \(allowed): \(KeyServiceProblem.describe(error))")
            }
        }
        try VolumeSeal.seal(&configuration, client: client)
        if case let .remote(remote) = settings {
            try TrustedVolume(endpoint: remote.endpoint, region: remote.region, profile: remote.profile,
                              sealKeyARN: configuration.seal!.keyARN).save(volumeID: volumeID)
        }
        try configuration.write(cipherDirectory: cipherDirectory)
        if let engine = (client as? EmbeddedKMSClient)?.engine { try engine.flushAudit() }
        return configuration
    }

    static func randomAccount() throws -> String {
        let digits = try SecureRandom.bytes(count: 12).map { String($0 % 10) }.joined()
        return "1" + digits.dropFirst()
    }
}
