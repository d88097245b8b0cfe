import Foundation

public struct GetKeyRotationStatusResponse: Sendable {
    public var keyRotationEnabled: Bool
    public var keyId: String
    public var rotationPeriodInDays: Int?
    public var nextRotationDate: Date?
}

extension KMSEngine {
    /// GetKeyRotationStatus.
    public func getKeyRotationStatus(keyID: String, caller: Caller) throws -> GetKeyRotationStatusResponse {
        try perform(.getKeyRotationStatus, caller) { record, state in
            let key = try managedKey(keyID, action: .getKeyRotationStatus, for: caller, in: state, record: &record).record
            return GetKeyRotationStatusResponse(keyRotationEnabled: key.rotationEnabled, keyId: key.arn,
                                                rotationPeriodInDays: key.rotationPeriodInDays, nextRotationDate: key.nextRotationDate)
        }
    }
}
