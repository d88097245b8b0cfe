import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// GenerateDataKeyWithoutPlaintext.
    static let generateDataKeyWithoutPlaintext: Operation = { m, caller, engine in
        let (keyID, spec, bytes, context, caller) = try dataKeyMembers(&m, caller)
        let r = try engine.generateDataKeyWithoutPlaintext(keyID: keyID, keySpec: spec, numberOfBytes: bytes, encryptionContext: context, caller: caller)
        return .object([("CiphertextBlob", .blob(r.ciphertextBlob)), ("KeyId", .string(r.keyId))])
    }
}
