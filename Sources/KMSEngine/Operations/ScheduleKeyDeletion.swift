import Foundation

public struct ScheduleKeyDeletionResponse: Sendable {
    public var keyId: String
    public var deletionDate: Date
    public var keyState: KeyState
    public var pendingWindowInDays: Int
}

extension KMSEngine {
    /// ScheduleKeyDeletion: the key becomes PendingDeletion (unusable) and is destroyed, with its
    /// material, after 7–30 days (default 30) unless CancelKeyDeletion comes first.
    public func scheduleKeyDeletion(keyID: String, pendingWindowInDays: Int? = nil, caller: Caller) throws -> ScheduleKeyDeletionResponse {
        try updateKey(.scheduleKeyDeletion, keyID: keyID,
                      extra: ["kms:schedulekeydeletionpendingwindowindays": [String(pendingWindowInDays ?? 30)]], caller: caller) { key in
            let days = pendingWindowInDays ?? 30
            try Validate.range(days, "pendingWindowInDays", 7...30)
            try Self.requireNotPendingDeletion(key)
            key.state = .pendingDeletion
            key.pendingWindowInDays = days
            let date = clock.now().addingTimeInterval(Double(days) * 86_400)
            key.deletionDate = date
            return ScheduleKeyDeletionResponse(keyId: key.arn, deletionDate: date, keyState: .pendingDeletion, pendingWindowInDays: days)
        }
    }
}
