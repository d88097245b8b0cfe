import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// Encrypt.
    static let encrypt: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId")
        let plaintext = try m.requiredSecret("Plaintext")
        let context = try m.stringMap("EncryptionContext") ?? [:]
        let algorithm = try m.enumeration("EncryptionAlgorithm", EncryptionAlgorithm.self) ?? .symmetricDefault
        try m.grantTokens()
        let caller = try m.dryRun(caller)
        try m.finish()
        let r = try engine.encrypt(keyID: keyID, plaintext: plaintext, encryptionContext: context, encryptionAlgorithm: algorithm, caller: caller)
        return .object([("CiphertextBlob", .blob(r.ciphertextBlob)), ("KeyId", .string(r.keyId)),
                        ("EncryptionAlgorithm", .string(r.encryptionAlgorithm.rawValue))])
    }
}
