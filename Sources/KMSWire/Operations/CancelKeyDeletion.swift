import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// CancelKeyDeletion.
    static let cancelKeyDeletion: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId")
        try m.finish()
        return .object([("KeyId", .string(try engine.cancelKeyDeletion(keyID: keyID, caller: caller)))])
    }
}
