import Foundation

/// Everything the service knows about a key except its material: what the store persists as the
/// key's row (JSON), and what the engine keeps in memory.
struct KeyRecord: Codable, Sendable, Equatable {
    var keyID: String
    var account: String
    var region: String
    var description: String
    var state: KeyState
    var usage: KeyUsage
    var spec: KeySpec
    var origin: Origin
    var manager: KeyManager
    var creationDate: Date
    var deletionDate: Date?
    var pendingWindowInDays: Int?
    var policy: String
    var multiRegion: Bool
    var tags: [Tag]
    var rotationEnabled: Bool
    var rotationPeriodInDays: Int?
    var nextRotationDate: Date?
    /// Backing-key versions, oldest first; the last one encrypts. Empty while PendingImport.
    var versions: [KeyVersion]
    /// For an AWS-managed key, the service it belongs to (`alias/aws/<service>`).
    var service: String?
    /// Imported material (origin EXTERNAL): whether and when it expires.
    var expirationModel: ExpirationModel?
    var validTo: Date?
    /// A keyed fingerprint of the material first imported (``KMSEngine/materialFingerprint``):
    /// a later import must bring the same material, as AWS requires.
    var materialFingerprint: String?
    /// The custom key store whose key backs this one (origin AWS_CLOUDHSM or EXTERNAL_KEY_STORE);
    /// its material is there, labelled with this key's ID (a token) or `xksKeyID` (a proxy).
    var customKeyStoreID: String?
    var xksKeyID: String?
    /// The label of the backing key in its custom key store.
    var customKeyLabel: String { xksKeyID ?? keyID }

    var arn: String { ARN.key(keyID, account: account, region: region) }
    var currentVersion: KeyVersion? { versions.last }
    var onDemandRotations: Int { versions.filter { $0.rotationType == .onDemand }.count }

    var metadata: KeyMetadata {
        KeyMetadata(
            awsAccountId: account, keyId: keyID, arn: arn, creationDate: creationDate,
            enabled: state == .enabled, description: description, keyUsage: usage, keyState: state,
            deletionDate: deletionDate, pendingDeletionWindowInDays: state == .pendingDeletion ? pendingWindowInDays : nil,
            origin: origin, keyManager: manager, keySpec: spec,
            encryptionAlgorithms: spec.encryptionAlgorithms(usage), signingAlgorithms: spec.signingAlgorithms(usage),
            macAlgorithms: spec.macAlgorithms(usage), keyAgreementAlgorithms: spec.keyAgreementAlgorithms(usage),
            multiRegion: multiRegion, expirationModel: versions.isEmpty ? nil : expirationModel, validTo: versions.isEmpty ? nil : validTo,
            customKeyStoreId: customKeyStoreID, xksKeyId: xksKeyID)
    }
}

/// One backing key of a key: version 1 is the original material, each rotation adds one.
struct KeyVersion: Codable, Sendable, Equatable {
    var version: UInt32
    var creationDate: Date
    /// nil for the original material.
    var rotationType: RotationType?
}

/// An alias row.
struct AliasRecord: Codable, Sendable, Equatable {
    var account: String
    var region: String
    var aliasName: String
    /// nil for a predefined AWS-managed alias not yet bound to a key.
    var targetKeyID: String?
    var creationDate: Date
    var lastUpdatedDate: Date

    var arn: String { ARN.alias(aliasName, account: account, region: region) }
}
