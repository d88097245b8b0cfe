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
    /// A multi-Region key's primary Region (the same on every copy); nil for a single-Region key.
    var primaryRegion: String?
    var tags: [Tag]
    /// How many times the primary Region of this multi-Region key has changed (UpdatePrimaryRegion),
    /// the same on every copy once it has heard: a peer's message of an older epoch is stale.
    var primaryEpoch: Int?
    /// The primary Region before the last change of primary a peer told this copy of: the
    /// deployment that may take the primary back if the copy it was handed to is deleted.
    var formerPrimaryRegion: String?
    /// The largest epoch a peer may send: far more changes of primary than any key will see, and
    /// far enough below Int.max that counting on from it cannot overflow.
    static let maximumPrimaryEpoch = 1 << 62
    /// The Regions of this multi-Region key's copies that peer deployments hold (kmsd instances
    /// with their own stores, ``ReplicaPeers``), the same on every copy here; nil for none.
    var peerRegions: [String]?
    /// On the copy that speaks for the key to peers (the primary, or the former primary handing
    /// over): the fingerprint of the shared state each peer Region has acknowledged
    /// (``PeerSync``). A Region whose entry is not the current fingerprint is sent it again.
    var peerSynced: [String: String]?
    /// On the primary: the replicas ReplicateKey asked of peers and they have not made yet.
    var peerReplicaRequests: [String: PeerReplicaRequest]?
    /// On a former primary after UpdatePrimaryRegion named a peer's Region: the state it returns
    /// to (from Updating) when the new primary has acknowledged the change.
    var stateAfterUpdate: KeyState?
    /// On a former primary: set until every peer Region has acknowledged the new primary.
    var handingOver: Bool?
    var rotationEnabled: Bool
    var rotationPeriodInDays: Int?
    var nextRotationDate: Date?
    /// Backing-key versions, oldest first; the last one encrypts. Empty while PendingImport.
    var versions: [KeyVersion]
    /// For an AWS-managed key, the service it belongs to (`alias/aws/<service>`).
    var service: String?
    /// Stores written before keys had several materials kept these for their one imported
    /// material; ``migrated()`` moves them onto version 1 (``KeyVersion``), where they live now.
    var expirationModel: ExpirationModel?
    var validTo: Date?
    var materialFingerprint: String?
    /// Imported material (ImportType NEW_KEY_MATERIAL) waiting for RotateKeyOnDemand to make it current.
    var pendingRotation: KeyVersion?
    /// The custom key store whose key backs this one (origin AWS_CLOUDHSM or EXTERNAL_KEY_STORE);
    /// its material is there, labelled with this key's ID (a token) or `xksKeyID` (a proxy).
    var customKeyStoreID: String?
    var xksKeyID: String?
    /// The label of the backing key in its custom key store.
    var customKeyLabel: String { xksKeyID ?? keyID }

    /// The automatic rotation periods AWS takes, in days.
    static let rotationPeriods = 90...2560
    /// The most tags a key has (AWS's limit).
    static let maximumTags = 50

    var arn: String { ARN.key(keyID, account: account, region: region) }
    /// A multi-Region key's copy outside its primary Region.
    var isReplica: Bool { multiRegion && primaryRegion != nil && primaryRegion != region }
    /// Whether this copy tells peer deployments what the key's copies share: the primary, or a
    /// former primary until the change of primary has reached every peer.
    var speaksToPeers: Bool { multiRegion && (primaryRegion == region || handingOver == true) && !(peerRegions ?? []).isEmpty }
    var currentVersion: KeyVersion? { versions.last }
    /// Every material the key has: its versions, then the one pending rotation.
    var allVersions: [KeyVersion] { versions + (pendingRotation.map { [$0] } ?? []) }

    /// The record in today's shape: an EXTERNAL key's one material described on version 1 (even
    /// when deleted: the key's versions stay, and its material may come back).
    func migrated() -> KeyRecord {
        guard let fingerprint = materialFingerprint else { return self }
        var record = self
        if record.versions.isEmpty { record.versions = [KeyVersion(version: 1, creationDate: creationDate, rotationType: nil)] }
        if record.versions[0].materialID == nil {
            record.versions[0].materialID = fingerprint
            record.versions[0].expirationModel = expirationModel
            record.versions[0].validTo = validTo
        }
        record.materialFingerprint = nil
        record.expirationModel = nil
        record.validTo = nil
        return record
    }
    var onDemandRotations: Int { versions.filter { $0.rotationType == .onDemand }.count }

    var metadata: KeyMetadata {
        KeyMetadata(
            awsAccountId: account, keyId: keyID, arn: arn, creationDate: creationDate,
            enabled: state == .enabled, description: description, keyUsage: usage, keyState: state,
            deletionDate: deletionDate, pendingDeletionWindowInDays: state == .pendingDeletion ? pendingWindowInDays : nil,
            origin: origin, keyManager: manager, keySpec: spec,
            encryptionAlgorithms: spec.encryptionAlgorithms(usage), signingAlgorithms: spec.signingAlgorithms(usage),
            macAlgorithms: spec.macAlgorithms(usage), keyAgreementAlgorithms: spec.keyAgreementAlgorithms(usage),
            multiRegion: multiRegion,
            expirationModel: state == .pendingImport || origin != .external ? nil : currentVersion?.expirationModel,
            validTo: state == .pendingImport || origin != .external ? nil : currentVersion?.validTo,
            customKeyStoreId: customKeyStoreID, xksKeyId: xksKeyID,
            currentKeyMaterialId: spec == .symmetricDefault && customKeyStoreID == nil ? currentVersion?.materialID : nil)
    }
}

/// One backing key of a key: version 1 is the original material, each rotation adds one.
struct KeyVersion: Codable, Sendable, Equatable {
    var version: UInt32
    var creationDate: Date
    /// nil for the original material.
    var rotationType: RotationType?
    /// AWS's KeyMaterialId: a keyed fingerprint of the material and the key ID
    /// (``KMSEngine/materialFingerprint``), 64 hex digits. Set for every symmetric key's versions.
    var materialID: String?
    /// Imported material: its description, and whether and when it expires.
    var materialDescription: String?
    var expirationModel: ExpirationModel?
    var validTo: Date?

    init(version: UInt32, creationDate: Date, rotationType: RotationType?, materialID: String? = nil) {
        self.version = version
        self.creationDate = creationDate
        self.rotationType = rotationType
        self.materialID = materialID
    }
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
