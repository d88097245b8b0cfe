import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// UntagResource.
    static let untagResource: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId")
        guard let keys = try m.stringList("TagKeys") else { throw Members.missing("TagKeys") }
        try m.finish()
        try engine.untagResource(keyID: keyID, tagKeys: keys, caller: caller)
        return .empty
    }
}
