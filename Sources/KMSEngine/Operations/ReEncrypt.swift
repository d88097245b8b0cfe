import KMSFSCrypto

public struct ReEncryptResponse: Sendable {
    public var ciphertextBlob: [UInt8]
    public var sourceKeyId: String
    public var keyId: String
    public var sourceEncryptionAlgorithm: EncryptionAlgorithm
    public var destinationEncryptionAlgorithm: EncryptionAlgorithm
}

extension KMSEngine {
    /// ReEncrypt: decrypts and re-encrypts inside the engine (the plaintext never leaves it),
    /// possibly under another key and another context.
    public func reEncrypt(ciphertextBlob: [UInt8], sourceEncryptionContext: EncryptionContext = [:], sourceKeyID: String? = nil,
                          destinationKeyID: String, destinationEncryptionContext: EncryptionContext = [:],
                          sourceEncryptionAlgorithm: EncryptionAlgorithm = .symmetricDefault,
                          destinationEncryptionAlgorithm: EncryptionAlgorithm = .symmetricDefault,
                          caller: Caller) throws -> ReEncryptResponse {
        try perform(.reEncrypt, caller, context: destinationEncryptionContext) { record, state in
            try Validate.encryptionContext(destinationEncryptionContext)
            // Two permissions, as in AWS: kms:ReEncryptFrom on the source key, kms:ReEncryptTo on
            // the destination — both decided before anything is decrypted. An RSA ciphertext
            // names no key: SourceKeyId does.
            let sourceID: String
            if sourceEncryptionAlgorithm == .symmetricDefault {
                sourceID = try CiphertextBlob(parsing: ciphertextBlob).keyID
            } else {
                guard let sourceKeyID else {
                    throw KMSError(.validation, "SourceKeyId is required to re-encrypt from the \(sourceEncryptionAlgorithm.rawValue) encryption algorithm")
                }
                sourceID = try resolve(sourceKeyID, for: caller, allowAlias: true, action: .reEncryptFrom, in: state).record.keyID
            }
            let resolved = try resolve(destinationKeyID, for: caller, allowAlias: true, action: .reEncryptTo, in: state)
            let destination = try use(resolved, namedAs: destinationKeyID, action: .reEncryptTo, for: caller,
                                      context: destinationEncryptionContext,
                                      extra: ["kms:reencryptonsamekey": [String(resolved.record.keyID == sourceID)],
                                              "kms:encryptionalgorithm": [destinationEncryptionAlgorithm.rawValue]],
                                      in: state, record: &record)
            try Self.requireEncryptionAlgorithm(destinationEncryptionAlgorithm, destination.record, for: "ReEncrypt")
            let (source, plaintext) = try open(ciphertextBlob, context: sourceEncryptionContext, keyID: sourceKeyID,
                                               algorithm: sourceEncryptionAlgorithm, action: .reEncryptFrom, caller: caller, state: state,
                                               record: &record)
            let blob = destinationEncryptionAlgorithm == .symmetricDefault
                ? try sealBlob(plaintext, key: destination, context: destinationEncryptionContext, for: record)
                : try encryptAsymmetric(plaintext, key: destination, algorithm: destinationEncryptionAlgorithm, context: destinationEncryptionContext)
            return ReEncryptResponse(ciphertextBlob: blob, sourceKeyId: source.record.arn, keyId: destination.record.arn,
                                     sourceEncryptionAlgorithm: sourceEncryptionAlgorithm,
                                     destinationEncryptionAlgorithm: destinationEncryptionAlgorithm)
        }
    }
}
