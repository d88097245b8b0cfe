import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// ListKeys.
    static let listKeys: Operation = { m, caller, engine in
        let limit = try m.int("Limit"), marker = try m.string("Marker")
        try m.finish()
        let page = try engine.listKeys(limit: limit, marker: marker, caller: caller)
        return .page("Keys", page.keys.map { .object([("KeyId", .string($0.keyId)), ("KeyArn", .string($0.keyArn))]) },
                     nextMarker: page.nextMarker)
    }
}
