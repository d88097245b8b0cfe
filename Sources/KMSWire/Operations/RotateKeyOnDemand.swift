import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// RotateKeyOnDemand.
    static let rotateKeyOnDemand: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId")
        try m.finish()
        return .object([("KeyId", .string(try engine.rotateKeyOnDemand(keyID: keyID, caller: caller)))])
    }
}
