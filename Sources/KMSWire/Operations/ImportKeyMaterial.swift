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
        try m.finish()
        let arn = try engine.importKeyMaterial(keyID: keyID, importToken: token, encryptedKeyMaterial: material, validTo: validTo,
                                               expirationModel: model, caller: caller)
        return .object([("KeyId", .string(arn))])
    }

    /// DeleteImportedKeyMaterial.
    static let deleteImportedKeyMaterial: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId")
        try m.finish()
        try engine.deleteImportedKeyMaterial(keyID: keyID, caller: caller)
        return .empty
    }
}
