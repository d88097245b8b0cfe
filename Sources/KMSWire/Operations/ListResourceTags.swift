import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// ListResourceTags.
    static let listResourceTags: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId"), limit = try m.int("Limit"), marker = try m.string("Marker")
        try m.finish()
        let page = try engine.listResourceTags(keyID: keyID, limit: limit, marker: marker, caller: caller)
        return .page("Tags", page.tags.map { .object([("TagKey", .string($0.tagKey)), ("TagValue", .string($0.tagValue))]) },
                     nextMarker: page.nextMarker)
    }
}
