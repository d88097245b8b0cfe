import Foundation

public struct RotationsListEntry: Sendable, Equatable {
    public var keyId: String
    public var rotationDate: Date
    public var rotationType: RotationType
}

public struct ListKeyRotationsResponse: Sendable {
    public var rotations: [RotationsListEntry]
    public var nextMarker: String?
    public var truncated: Bool
}

extension KMSEngine {
    /// ListKeyRotations: completed rotations, oldest first (the original material is not one).
    public func listKeyRotations(keyID: String, limit: Int? = nil, marker: String? = nil, caller: Caller) throws -> ListKeyRotationsResponse {
        try perform(.listKeyRotations, caller) { record, state in
            let key = try managedKey(keyID, action: .listKeyRotations, for: caller, in: state, record: &record).record
            guard key.spec == .symmetricDefault, key.origin == .awsKMS else {
                throw KMSError(.unsupportedOperation, "\(key.arn) does not support rotation")
            }
            let rotations = key.versions.filter { $0.rotationType != nil }
            let (page, next) = try Paging.page(rotations, key: { String(format: "%010u", $0.version) }, limit: limit, marker: marker)
            return ListKeyRotationsResponse(
                rotations: page.map { RotationsListEntry(keyId: key.arn, rotationDate: $0.creationDate, rotationType: $0.rotationType!) },
                nextMarker: next, truncated: next != nil)
        }
    }
}
