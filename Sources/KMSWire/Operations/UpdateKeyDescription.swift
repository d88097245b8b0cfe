import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// UpdateKeyDescription.
    static let updateKeyDescription: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId"), description = try m.requiredString("Description")
        try m.finish()
        try engine.updateKeyDescription(keyID: keyID, description: description, caller: caller)
        return .empty
    }
}
