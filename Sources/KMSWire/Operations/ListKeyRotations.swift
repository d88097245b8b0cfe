import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// ListKeyRotations.
    static let listKeyRotations: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId"), limit = try m.int("Limit"), marker = try m.string("Marker")
        let include = try m.enumeration("IncludeKeyMaterial", IncludeKeyMaterial.self)
        try m.finish()
        let page = try engine.listKeyRotations(keyID: keyID, allKeyMaterial: include == .allKeyMaterial, limit: limit, marker: marker,
                                               caller: caller)
        return .page("Rotations", page.rotations.map { entry in
            var members: [(String, JSONValue)] = [("KeyId", .string(entry.keyId))]
            if let id = entry.keyMaterialId { members.append(("KeyMaterialId", .string(id))) }
            if let text = entry.keyMaterialDescription { members.append(("KeyMaterialDescription", .string(text))) }
            if let state = entry.importState { members.append(("ImportState", .string(state.rawValue))) }
            if let state = entry.keyMaterialState { members.append(("KeyMaterialState", .string(state.rawValue))) }
            if let model = entry.expirationModel { members.append(("ExpirationModel", .string(model.rawValue))) }
            if let date = entry.validTo { members.append(("ValidTo", .date(date))) }
            if let date = entry.rotationDate { members.append(("RotationDate", .date(date))) }
            if let type = entry.rotationType { members.append(("RotationType", .string(type.rawValue))) }
            return .object(members)
        }, nextMarker: page.nextMarker)
    }
}

/// ListKeyRotations' IncludeKeyMaterial.
enum IncludeKeyMaterial: String, CaseIterable {
    case allKeyMaterial = "ALL_KEY_MATERIAL", rotationsOnly = "ROTATIONS_ONLY"
}
