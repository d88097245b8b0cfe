import KMSFSCrypto

public struct EncryptResponse: Sendable {
    public var ciphertextBlob: [UInt8]
    public var keyId: String
    public var encryptionAlgorithm: EncryptionAlgorithm
}

extension KMSEngine {
    /// Encrypt: up to 4096 bytes under a symmetric key, bound to `encryptionContext`; or, with an
    /// RSA key and RSAES_OAEP_SHA_1/256, as much as OAEP takes, with no context.
    public func encrypt(keyID: String, plaintext: SecretBytes, encryptionContext: EncryptionContext = [:],
                        encryptionAlgorithm: EncryptionAlgorithm = .symmetricDefault, caller: Caller) throws -> EncryptResponse {
        try perform(.encrypt, caller, context: encryptionContext) { record, state in
            try Validate.sensitiveLength(plaintext.count, member: "plaintext", 1...4096)
            try Validate.encryptionContext(encryptionContext)
            let key = try usableKey(keyID, action: .encrypt, for: caller, context: encryptionContext,
                                    extra: ["kms:encryptionalgorithm": [encryptionAlgorithm.rawValue]], in: state, record: &record)
            try Self.requireEncryptionAlgorithm(encryptionAlgorithm, key.record, for: "Encrypt")
            try Self.endDryRun(caller)
            let blob = encryptionAlgorithm == .symmetricDefault
                ? try sealBlob(plaintext, key: key, context: encryptionContext, for: record)
                : try encryptAsymmetric(plaintext, key: key, algorithm: encryptionAlgorithm, context: encryptionContext)
            return EncryptResponse(ciphertextBlob: blob, keyId: key.record.arn, encryptionAlgorithm: encryptionAlgorithm)
        }
    }

    static func requireSymmetric(_ algorithm: EncryptionAlgorithm, _ key: KeyRecord) throws(KMSError) {
        guard key.usage == .encryptDecrypt, key.spec.isSymmetric else {
            throw KMSError(.invalidKeyUsage, "\(key.arn) key usage is \(key.usage.rawValue), not ENCRYPT_DECRYPT")
        }
        guard algorithm == .symmetricDefault else {
            throw KMSError(.invalidKeyUsage, "\(key.arn) does not support \(algorithm.rawValue)")
        }
    }
}
