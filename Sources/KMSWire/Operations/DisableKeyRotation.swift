import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// DisableKeyRotation.
    static let disableKeyRotation: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId")
        try m.finish()
        try engine.disableKeyRotation(keyID: keyID, caller: caller)
        return .empty
    }
}
