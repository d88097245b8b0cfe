import KMSFSCrypto

public struct DecryptResponse: Sendable {
    public var keyId: String
    public var plaintext: SecretBytes
    public var encryptionAlgorithm: EncryptionAlgorithm
}

extension KMSEngine {
    /// Decrypt: the blob names its key, so `keyID` is optional; a given one that is not the
    /// blob's key is IncorrectKeyException. A wrong context or a changed blob is
    /// InvalidCiphertextException.
    public func decrypt(ciphertextBlob: [UInt8], encryptionContext: EncryptionContext = [:], keyID: String? = nil,
                        encryptionAlgorithm: EncryptionAlgorithm = .symmetricDefault, caller: Caller) throws -> DecryptResponse {
        try perform(.decrypt, caller, context: encryptionContext) { record, state in
            let (key, plaintext) = try open(ciphertextBlob, context: encryptionContext, keyID: keyID,
                                            algorithm: encryptionAlgorithm, action: .decrypt, caller: caller, state: state, record: &record)
            return DecryptResponse(keyId: key.record.arn, plaintext: plaintext, encryptionAlgorithm: encryptionAlgorithm)
        }
    }

    /// The shared first half of Decrypt and ReEncrypt.
    func open(_ bytes: [UInt8], context: EncryptionContext, keyID: String?, algorithm: EncryptionAlgorithm,
              action: KMSAction, caller: Caller, state: EngineState, record: inout AuditRecord) throws -> (LiveKey, SecretBytes) {
        try Validate.sensitiveLength(bytes.count, member: "ciphertextBlob", 1...6144)
        let extra = ["kms:encryptionalgorithm": [algorithm.rawValue]]
        if algorithm != .symmetricDefault {
            // An RSA ciphertext names no key: the request must.
            guard let keyID else {
                throw KMSError(.validation, "KeyId is required to decrypt with the \(algorithm.rawValue) encryption algorithm")
            }
            let key = try usableKey(keyID, action: action, for: caller, context: context, extra: extra, in: state, record: &record)
            try Self.requireEncryptionAlgorithm(algorithm, key.record, for: "Decrypt")
            try Self.endDryRun(caller)
            return (key, try decryptAsymmetric(bytes, key: key, algorithm: algorithm, context: context))
        }
        let blob = try CiphertextBlob(parsing: bytes)
        // The blob names its key by ID alone. A KeyId in the request says which key that is
        // (another account's, by ARN); without one, the key of that ID in the caller's Region —
        // the caller's own if it has one, else the one other account's that has it (several:
        // ambiguous, the request must name it). A missing key is resolved (and refused) as the ID names it.
        let key: LiveKey
        if let keyID {
            let named = try resolve(keyID, for: caller, allowAlias: true, action: action, in: state)
            guard named.record.keyID == blob.keyID else {
                throw KMSError(.incorrectKey, "The key ID in the request does not identify the key that encrypted the ciphertext")
            }
            key = try use(named, namedAs: keyID, action: action, for: caller, context: context, extra: extra, in: state, record: &record)
        } else if let found = state.keys.find(blob.keyID, region: caller.region, preferring: caller.account) {
            key = try use(found, namedAs: blob.keyID, action: action, for: caller, context: context, extra: extra, in: state, record: &record)
        } else {
            key = try usableKey(blob.keyID, action: action, for: caller, context: context, extra: extra, in: state, record: &record)
        }
        try Self.requireEncryptionAlgorithm(algorithm, key.record, for: "Decrypt")
        try Self.endDryRun(caller)
        return (key, try openBlob(blob, key: key, context: context, for: record))
    }
}
