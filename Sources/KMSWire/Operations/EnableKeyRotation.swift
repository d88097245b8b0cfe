import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// EnableKeyRotation.
    static let enableKeyRotation: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId"), days = try m.int("RotationPeriodInDays")
        try m.finish()
        try engine.enableKeyRotation(keyID: keyID, rotationPeriodInDays: days, caller: caller)
        return .empty
    }
}
