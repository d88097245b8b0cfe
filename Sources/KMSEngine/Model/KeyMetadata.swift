import Foundation

/// What DescribeKey, CreateKey and friends return about a key (AWS `KeyMetadata`).
public struct KeyMetadata: Sendable, Equatable {
    public var awsAccountId: String
    public var keyId: String
    public var arn: String
    public var creationDate: Date
    public var enabled: Bool
    public var description: String
    public var keyUsage: KeyUsage
    public var keyState: KeyState
    public var deletionDate: Date?
    public var pendingDeletionWindowInDays: Int?
    public var origin: Origin
    public var keyManager: KeyManager
    public var keySpec: KeySpec
    /// Deprecated by AWS in favour of `keySpec`, still returned by it.
    public var customerMasterKeySpec: KeySpec { keySpec }
    /// Each list is empty unless the key's usage has algorithms of its kind (AWS omits it then).
    public var encryptionAlgorithms: [EncryptionAlgorithm]
    public var signingAlgorithms: [SigningAlgorithm]
    public var macAlgorithms: [MacAlgorithm]
    public var keyAgreementAlgorithms: [KeyAgreementAlgorithm]
    public var multiRegion: Bool
    /// Imported material: its expiration model, and when it expires.
    public var expirationModel: ExpirationModel?
    public var validTo: Date?
    /// A key in a custom key store: the store, its cluster (AWS_CLOUDHSM) or the external key (XKS).
    public var customKeyStoreId: String?
    public var cloudHsmClusterId: String?
    public var xksKeyId: String?
    /// The current material's KeyMaterialId (symmetric keys).
    public var currentKeyMaterialId: String?
    /// A multi-Region key's primary and replicas.
    public var multiRegionConfiguration: MultiRegionConfiguration?
}

/// A tag on a key.
public struct Tag: Sendable, Equatable, Hashable, Codable {
    public var tagKey: String
    public var tagValue: String
    public init(tagKey: String, tagValue: String) {
        self.tagKey = tagKey
        self.tagValue = tagValue
    }
}
