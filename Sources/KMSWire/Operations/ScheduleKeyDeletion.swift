import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// ScheduleKeyDeletion.
    static let scheduleKeyDeletion: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId"), days = try m.int("PendingWindowInDays")
        try m.finish()
        let r = try engine.scheduleKeyDeletion(keyID: keyID, pendingWindowInDays: days, caller: caller)
        return .object([("KeyId", .string(r.keyId)), ("DeletionDate", .date(r.deletionDate)),
                        ("KeyState", .string(r.keyState.rawValue)), ("PendingWindowInDays", .int(r.pendingWindowInDays))])
    }
}
