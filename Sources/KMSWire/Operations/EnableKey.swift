import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// EnableKey.
    static let enableKey: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId")
        try m.finish()
        try engine.enableKey(keyID: keyID, caller: caller)
        return .empty
    }
}
