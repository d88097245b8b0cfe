import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// DisableKey.
    static let disableKey: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId")
        try m.finish()
        try engine.disableKey(keyID: keyID, caller: caller)
        return .empty
    }
}
