import Synchronization

/// A use of a key pending deletion: the alarm AWS recommends on ScheduleKeyDeletion (a
/// CloudWatch alarm on CloudTrail records), because such a use means something still needs
/// the key and the deletion should probably be cancelled. Every such call is also in the audit
/// trail, noted "use of a key pending deletion".
public struct PendingDeletionUse: Sendable, Equatable {
    public var keyARN: String
    public var operation: String
    public var principal: String
    /// How many such uses this engine has seen since it was opened, this one included.
    public var count: Int
}

/// The count and the listener (kmsd logs a warning; the embedded service leaves it to the
/// client's own log of the refused call).
final class PendingDeletionAlarm: Sendable {
    let count = Atomic<Int>(0)
    let listener = Mutex<(@Sendable (PendingDeletionUse) -> Void)?>(nil)

    func raise(keyARN: String, record: AuditRecord) {
        let count = count.add(1, ordering: .relaxed).newValue
        let use = PendingDeletionUse(keyARN: keyARN, operation: record.operation, principal: record.principal, count: count)
        listener.withLock { $0 }?(use)
    }
}

extension KMSEngine {
    /// Uses of keys pending deletion since the engine was opened.
    public var pendingDeletionUses: Int { pendingDeletionAlarm.count.load(ordering: .relaxed) }

    /// Calls `listener` on every use of a key pending deletion (on the calling thread).
    public func onPendingDeletionUse(_ listener: @escaping @Sendable (PendingDeletionUse) -> Void) {
        pendingDeletionAlarm.listener.withLock { $0 = listener }
    }
}
