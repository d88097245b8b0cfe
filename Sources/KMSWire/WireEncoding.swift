import Foundation
import KMSEngine
import KMSFSCrypto
import KMSJSON

/// Engine values in their AWS JSON shapes.
extension JSONValue {
    static func date(_ date: Date) -> JSONValue { .timestamp(date.timeIntervalSince1970) }

    /// A secret (plaintext, data key) in base64: the one place a secret becomes response text.
    static func secret(_ secret: SecretBytes) -> JSONValue {
        secret.withUnsafeBytes { .string(Data($0).base64EncodedString()) }
    }

    static func keyMetadata(_ m: KeyMetadata) -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("AWSAccountId", .string(m.awsAccountId)), ("KeyId", .string(m.keyId)), ("Arn", .string(m.arn)),
            ("CreationDate", .date(m.creationDate)), ("Enabled", .bool(m.enabled)), ("Description", .string(m.description)),
            ("KeyUsage", .string(m.keyUsage.rawValue)), ("KeyState", .string(m.keyState.rawValue)),
        ]
        if let deletion = m.deletionDate { members.append(("DeletionDate", .date(deletion))) }
        if let window = m.pendingDeletionWindowInDays { members.append(("PendingDeletionWindowInDays", .int(window))) }
        members += [
            ("Origin", .string(m.origin.rawValue)), ("KeyManager", .string(m.keyManager.rawValue)),
            ("CustomerMasterKeySpec", .string(m.customerMasterKeySpec.rawValue)), ("KeySpec", .string(m.keySpec.rawValue)),
        ]
        members += algorithmLists(encryption: m.encryptionAlgorithms, signing: m.signingAlgorithms, mac: m.macAlgorithms,
                                  keyAgreement: m.keyAgreementAlgorithms)
        members.append(("MultiRegion", .bool(m.multiRegion)))
        if let configuration = m.multiRegionConfiguration {
            func key(_ key: (arn: String, region: String)) -> JSONValue { .object([("Arn", .string(key.arn)), ("Region", .string(key.region))]) }
            members.append(("MultiRegionConfiguration", .object([
                ("MultiRegionKeyType", .string(configuration.keyType.rawValue)), ("PrimaryKey", key(configuration.primaryKey)),
                ("ReplicaKeys", .array(configuration.replicaKeys.map(key))),
            ])))
        }
        if let model = m.expirationModel { members.append(("ExpirationModel", .string(model.rawValue))) }
        if let validTo = m.validTo { members.append(("ValidTo", .date(validTo))) }
        if let store = m.customKeyStoreId { members.append(("CustomKeyStoreId", .string(store))) }
        if let cluster = m.cloudHsmClusterId { members.append(("CloudHsmClusterId", .string(cluster))) }
        if let xks = m.xksKeyId { members.append(("XksKeyConfiguration", .object([("Id", .string(xks))]))) }
        if let material = m.currentKeyMaterialId { members.append(("CurrentKeyMaterialId", .string(material))) }
        return .object(members)
    }

    /// The algorithm lists of a key (DescribeKey, GetPublicKey): only those its usage has.
    static func algorithmLists(encryption: [EncryptionAlgorithm], signing: [SigningAlgorithm], mac: [MacAlgorithm],
                               keyAgreement: [KeyAgreementAlgorithm]) -> [(String, JSONValue)] {
        var members: [(String, JSONValue)] = []
        if !encryption.isEmpty { members.append(("EncryptionAlgorithms", .array(encryption.map { .string($0.rawValue) }))) }
        if !signing.isEmpty { members.append(("SigningAlgorithms", .array(signing.map { .string($0.rawValue) }))) }
        if !mac.isEmpty { members.append(("MacAlgorithms", .array(mac.map { .string($0.rawValue) }))) }
        if !keyAgreement.isEmpty { members.append(("KeyAgreementAlgorithms", .array(keyAgreement.map { .string($0.rawValue) }))) }
        return members
    }

    /// A paged list: `name: [...]`, `Truncated`, and `NextMarker` when there is more.
    static func page(_ name: String, _ items: [JSONValue], nextMarker: String?) -> JSONValue {
        var members: [(String, JSONValue)] = [(name, .array(items)), ("Truncated", .bool(nextMarker != nil))]
        if let nextMarker { members.append(("NextMarker", .string(nextMarker))) }
        return .object(members)
    }

    static let empty = JSONValue.object([])
}
