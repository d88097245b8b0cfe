import Foundation

public struct ScheduleKeyDeletionResponse: Sendable {
    public var keyId: String
    public var deletionDate: Date
    public var keyState: KeyState
    public var pendingWindowInDays: Int
}

extension KMSEngine {
    /// ScheduleKeyDeletion: the key becomes PendingDeletion (unusable) and is destroyed, with its
    /// material, after 7–30 days (default 30) unless CancelKeyDeletion comes first. A
    /// multi-Region primary key with replicas becomes PendingReplicaDeletion instead: its own
    /// waiting period starts when its last replica is deleted, as AWS does.
    public func scheduleKeyDeletion(keyID: String, pendingWindowInDays: Int? = nil, caller: Caller) throws -> ScheduleKeyDeletionResponse {
        let days = pendingWindowInDays ?? 30
        return try manage(.scheduleKeyDeletion, caller) { record, state in
            let key = try managedKey(keyID, action: .scheduleKeyDeletion,
                                     extra: ["kms:schedulekeydeletionpendingwindowindays": [String(days)]], for: caller, in: state, record: &record)
            try Validate.range(days, "pendingWindowInDays", 7...30)
            try Self.requireNotPendingDeletion(key.record)
            // Updating: a change of primary is reaching a peer; AWS takes no management changes then.
            guard key.record.state != .updating else {
                throw KMSError(.invalidState, "\(key.record.arn) is Updating: its primary Region is changing")
            }
            let waitsForReplicas = key.record.multiRegion && key.record.primaryRegion == key.record.region
                && !(relatedKeys(of: key.record, in: state).isEmpty && (key.record.peerRegions ?? []).isEmpty)
            let date = clock.now().addingTimeInterval(Double(days) * 86_400)
            let scheduled = key.with {
                $0.state = waitsForReplicas ? .pendingReplicaDeletion : .pendingDeletion
                $0.pendingWindowInDays = days
                $0.deletionDate = waitsForReplicas ? nil : date
            }
            state.keys[scheduled.record.identity] = scheduled
            if waitsForReplicas { record.note = "waits for its replicas' deletion" }
            return (ScheduleKeyDeletionResponse(keyId: key.record.arn, deletionDate: date, keyState: scheduled.record.state, pendingWindowInDays: days),
                    [.putKey(scheduled.record)])
        }
    }
}
