import Foundation
import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// GetParametersForImport.
    static let getParametersForImport: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId")
        guard let algorithm = try m.enumeration("WrappingAlgorithm", WrappingAlgorithm.self) else { throw Members.missing("WrappingAlgorithm") }
        guard let spec = try m.enumeration("WrappingKeySpec", WrappingKeySpec.self) else { throw Members.missing("WrappingKeySpec") }
        try m.finish()
        let r = try engine.getParametersForImport(keyID: keyID, wrappingAlgorithm: algorithm, wrappingKeySpec: spec, caller: caller)
        return .object([("KeyId", .string(r.keyId)), ("ImportToken", .blob(r.importToken)), ("PublicKey", .blob(r.publicKey)),
                        ("ParametersValidTo", .date(r.parametersValidTo))])
    }

    /// ImportKeyMaterial.
    static let importKeyMaterial: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId")
        let token = try m.requiredBlob("ImportToken")
        let material = try m.requiredBlob("EncryptedKeyMaterial")
        let validTo = try m.timestamp("ValidTo")
        let model = try m.enumeration("ExpirationModel", ExpirationModel.self)
        let type = try m.enumeration("ImportType", ImportType.self)
        let description = try m.string("KeyMaterialDescription")
        let materialID = try m.string("KeyMaterialId")
        try m.finish()
        let (arn, id) = try engine.importKeyMaterial(keyID: keyID, importToken: token, encryptedKeyMaterial: material, validTo: validTo,
                                                     expirationModel: model, importType: type, keyMaterialDescription: description,
                                                     keyMaterialID: materialID, caller: caller)
        return .object([("KeyId", .string(arn)), ("KeyMaterialId", .string(id))])
    }

    /// DeleteImportedKeyMaterial.
    static let deleteImportedKeyMaterial: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId")
        let materialID = try m.string("KeyMaterialId")
        try m.finish()
        let (arn, id) = try engine.deleteImportedKeyMaterial(keyID: keyID, keyMaterialID: materialID, caller: caller)
        var members: [(String, JSONValue)] = [("KeyId", .string(arn))]
        if let id { members.append(("KeyMaterialId", .string(id))) }
        return .object(members)
    }
}
