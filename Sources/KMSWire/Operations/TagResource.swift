import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// TagResource.
    static let tagResource: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId")
        guard let tags = try m.tags("Tags") else { throw Members.missing("Tags") }
        try m.finish()
        try engine.tagResource(keyID: keyID, tags: tags, caller: caller)
        return .empty
    }
}
