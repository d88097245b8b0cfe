import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// GenerateDataKey.
    static let generateDataKey: Operation = { m, caller, engine in
        let (keyID, spec, bytes, context) = try dataKeyMembers(&m)
        let r = try engine.generateDataKey(keyID: keyID, keySpec: spec, numberOfBytes: bytes, encryptionContext: context, caller: caller)
        return .object([("CiphertextBlob", .blob(r.ciphertextBlob)), ("Plaintext", .secret(r.plaintext!)), ("KeyId", .string(r.keyId))])
    }

    /// The members GenerateDataKey and GenerateDataKeyWithoutPlaintext share.
    static func dataKeyMembers(_ m: inout Members) throws -> (String, DataKeySpec?, Int?, EncryptionContext) {
        let keyID = try m.requiredString("KeyId")
        let spec = try m.enumeration("KeySpec", DataKeySpec.self)
        let bytes = try m.int("NumberOfBytes")
        let context = try m.stringMap("EncryptionContext") ?? [:]
        m.ignore("GrantTokens")
        try m.finish()
        return (keyID, spec, bytes, context)
    }
}
