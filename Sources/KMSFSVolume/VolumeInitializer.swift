import Foundation
import KMSClient
import KMSEngine
import KMSFSCrypto
import KMSFSFormat

/// `kmsfs init`: a new volume in an empty backing directory.
public enum VolumeInitializer {
    public struct Options: Sendable {
        /// The KMS key for new files (ID, ARN or alias); for the embedded service, a new key with
        /// the alias `alias/kmsfs/<volume ID>` when nil.
        public var keyID: String?
        /// A remote endpoint; the embedded service when nil (and no remote settings are given).
        public var remote: KeyServiceSettings.Remote?
        public var chunkSize: Int = FileHeader.defaultChunkSize
        /// Where the embedded key store goes; `<cipher directory>.keys` (beside the volume) when nil.
        public var keyStoreDirectory: String?
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
        let keyID: String
        if let remote = options.remote {
            guard let given = options.keyID else {
                throw VolumeError.io("a volume on a remote key service needs --kms-key (an ID, ARN or alias of a key there)")
            }
            let client = try HTTPKMSClient(configuration: AWSConfiguration.resolve(.init(endpoint: remote.endpoint, region: remote.region,
                                                                                         profile: remote.profile)))
            keyID = try client.describeKey(keyID: given).keyARN
            settings = .remote(remote)
        } else {
            let directory = options.keyStoreDirectory ?? (cipherDirectory as NSString).standardizingPath + ".keys"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let embedded = KeyServiceSettings.Embedded(storePath: (directory as NSString).appendingPathComponent("keys.sqlite"),
                                                       rootKeyFile: (directory as NSString).appendingPathComponent("root.key"),
                                                       account: try randomAccount(), region: "local")
            if !FileManager.default.fileExists(atPath: embedded.rootKeyFile) {
                let rootKey = try RootKey.generate()
                guard FileManager.default.createFile(atPath: embedded.rootKeyFile, contents: Data(rootKey.hexEncoded()),
                                                     attributes: [.posixPermissions: 0o600])
                else { throw VolumeError.io("cannot write \(embedded.rootKeyFile)") }
            }
            let engine = try KMSEngine.open(path: embedded.storePath, rootKey: RootKey(loading: .file(embedded.rootKeyFile)),
                                            schedulerInterval: nil)
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
            try engine.flushAudit()
            settings = .embedded(embedded)
        }
        let configuration = VolumeConfiguration(volumeID: volumeID, chunkSize: options.chunkSize, defaultKeyID: keyID, keyService: settings)
        try configuration.write(cipherDirectory: cipherDirectory)
        return configuration
    }

    static func randomAccount() throws -> String {
        let digits = try SecureRandom.bytes(count: 12).map { String($0 % 10) }.joined()
        return "1" + digits.dropFirst()
    }
}
