import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// GenerateDataKey.
    static let generateDataKey: Operation = { m, caller, engine in
        let (keyID, spec, bytes, context, caller) = try dataKeyMembers(&m, caller)
        let r = try engine.generateDataKey(keyID: keyID, keySpec: spec, numberOfBytes: bytes, encryptionContext: context, caller: caller)
        return .object([("CiphertextBlob", .blob(r.ciphertextBlob)), ("Plaintext", .secret(r.plaintext!)), ("KeyId", .string(r.keyId))])
    }

    /// The members GenerateDataKey and GenerateDataKeyWithoutPlaintext share.
    static func dataKeyMembers(_ m: inout Members, _ caller: Caller) throws -> (String, DataKeySpec?, Int?, EncryptionContext, Caller) {
        let keyID = try m.requiredString("KeyId")
        let spec = try m.enumeration("KeySpec", DataKeySpec.self)
        let bytes = try m.int("NumberOfBytes")
        let context = try m.stringMap("EncryptionContext") ?? [:]
        try m.grantTokens()
        let caller = try m.dryRun(caller)
        try m.finish()
        return (keyID, spec, bytes, context, caller)
    }
}
