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
                          caller: Caller) throws -> ReEncryptResponse {
        try perform(.reEncrypt, caller, context: destinationEncryptionContext) { record, state in
            try Validate.encryptionContext(destinationEncryptionContext)
            // Two permissions, as in AWS: kms:ReEncryptFrom on the source key, kms:ReEncryptTo on
            // the destination — both decided before anything is decrypted.
            let sourceID = try CiphertextBlob(parsing: ciphertextBlob).keyID
            let resolved = try resolve(destinationKeyID, for: caller, allowAlias: true, action: .reEncryptTo, in: state)
            let destination = try use(resolved, namedAs: destinationKeyID, action: .reEncryptTo, for: caller,
                                      context: destinationEncryptionContext,
                                      extra: ["kms:reencryptonsamekey": [String(resolved.record.keyID == sourceID)]], in: state, record: &record)
            try Self.requireSymmetric(.symmetricDefault, destination.record)
            let (source, plaintext) = try open(ciphertextBlob, context: sourceEncryptionContext, keyID: sourceKeyID,
                                               algorithm: .symmetricDefault, action: .reEncryptFrom, caller: caller, state: state, record: &record)
            let blob = try sealBlob(plaintext, key: destination, context: destinationEncryptionContext)
            return ReEncryptResponse(ciphertextBlob: blob, sourceKeyId: source.record.arn, keyId: destination.record.arn,
                                     sourceEncryptionAlgorithm: .symmetricDefault, destinationEncryptionAlgorithm: .symmetricDefault)
        }
    }
}
