import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// Decrypt.
    static let decrypt: Operation = { m, caller, engine in
        let blob = try m.requiredBlob("CiphertextBlob")
        let context = try m.stringMap("EncryptionContext") ?? [:]
        let keyID = try m.string("KeyId")
        let algorithm = try m.enumeration("EncryptionAlgorithm", EncryptionAlgorithm.self) ?? .symmetricDefault
        try m.grantTokens()
        let caller = try m.dryRun(caller)
        try m.finish()
        let r = try engine.decrypt(ciphertextBlob: blob, encryptionContext: context, keyID: keyID, encryptionAlgorithm: algorithm, caller: caller)
        return .object([("KeyId", .string(r.keyId)), ("Plaintext", .secret(r.plaintext)),
                        ("EncryptionAlgorithm", .string(r.encryptionAlgorithm.rawValue))])
    }
}
