import Foundation

public struct RotationsListEntry: Sendable, Equatable {
    public var keyId: String
    /// nil for the first material and material pending rotation (listed with ALL_KEY_MATERIAL).
    public var rotationDate: Date?
    public var rotationType: RotationType?
    public var keyMaterialId: String?
    public var keyMaterialDescription: String?
    /// Imported material (EXTERNAL keys): whether it is here, and its expiry.
    public var importState: ImportState?
    public var keyMaterialState: KeyMaterialState?
    public var expirationModel: ExpirationModel?
    public var validTo: Date?
}

public struct ListKeyRotationsResponse: Sendable {
    public var rotations: [RotationsListEntry]
    public var nextMarker: String?
    public var truncated: Bool
}

extension KMSEngine {
    /// ListKeyRotations: completed rotations, oldest first; with `allKeyMaterial` (AWS's
    /// IncludeKeyMaterial ALL_KEY_MATERIAL) also the first material and material pending rotation.
    public func listKeyRotations(keyID: String, allKeyMaterial: Bool = false, limit: Int? = nil, marker: String? = nil,
                                 caller: Caller) throws -> ListKeyRotationsResponse {
        try perform(.listKeyRotations, caller) { record, state in
            let live = try managedKey(keyID, action: .listKeyRotations, for: caller, in: state, record: &record)
            let key = live.record
            guard key.spec == .symmetricDefault, key.origin == .awsKMS || key.origin == .external else {
                throw KMSError(.unsupportedOperation, "\(key.arn) does not support rotation")
            }
            let listed = allKeyMaterial ? key.allVersions : key.versions.filter { $0.rotationType != nil }
            let (page, next) = try Paging.page(listed, key: { String(format: "%010u", $0.version) }, limit: limit, marker: marker)
            let imported = key.origin == .external
            return ListKeyRotationsResponse(
                rotations: page.map { version in
                    let state: KeyMaterialState = version.version == key.currentVersion?.version ? .current
                        : version.version == key.pendingRotation?.version ? .pendingRotation : .nonCurrent
                    return RotationsListEntry(
                        keyId: key.arn, rotationDate: version.rotationType == nil ? nil : version.creationDate, rotationType: version.rotationType,
                        keyMaterialId: version.materialID, keyMaterialDescription: imported ? version.materialDescription : nil,
                        importState: imported ? (live.material[version.version] == nil ? .pendingImport : .imported) : nil,
                        keyMaterialState: state, expirationModel: imported ? version.expirationModel : nil, validTo: imported ? version.validTo : nil)
                },
                nextMarker: next, truncated: next != nil)
        }
    }
}
