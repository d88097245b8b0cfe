import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// GetKeyRotationStatus.
    static let getKeyRotationStatus: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId")
        try m.finish()
        let r = try engine.getKeyRotationStatus(keyID: keyID, caller: caller)
        var members: [(String, JSONValue)] = [("KeyRotationEnabled", .bool(r.keyRotationEnabled)), ("KeyId", .string(r.keyId))]
        if let days = r.rotationPeriodInDays { members.append(("RotationPeriodInDays", .int(days))) }
        if let next = r.nextRotationDate { members.append(("NextRotationDate", .date(next))) }
        return .object(members)
    }
}
