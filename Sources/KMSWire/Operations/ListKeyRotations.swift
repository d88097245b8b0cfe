import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// ListKeyRotations.
    static let listKeyRotations: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId"), limit = try m.int("Limit"), marker = try m.string("Marker")
        _ = try m.string("IncludeKeyMaterial")
        try m.finish()
        let page = try engine.listKeyRotations(keyID: keyID, limit: limit, marker: marker, caller: caller)
        return .page("Rotations", page.rotations.map {
            .object([("KeyId", .string($0.keyId)), ("RotationDate", .date($0.rotationDate)), ("RotationType", .string($0.rotationType.rawValue))])
        }, nextMarker: page.nextMarker)
    }
}
