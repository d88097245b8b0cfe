import KMSFSCrypto

public struct GenerateDataKeyResponse: Sendable {
    public var ciphertextBlob: [UInt8]
    /// nil for GenerateDataKeyWithoutPlaintext.
    public var plaintext: SecretBytes?
    public var keyId: String
}

extension KMSEngine {
    /// GenerateDataKey: a random data key of `keySpec` (AES_128, AES_256) or `numberOfBytes`
    /// (1–1024) — exactly one of them — in plaintext and sealed under the key.
    public func generateDataKey(keyID: String, keySpec: DataKeySpec? = nil, numberOfBytes: Int? = nil,
                                encryptionContext: EncryptionContext = [:], caller: Caller) throws -> GenerateDataKeyResponse {
        try generateDataKey(.generateDataKey, keyID: keyID, keySpec: keySpec, numberOfBytes: numberOfBytes,
                            encryptionContext: encryptionContext, returnPlaintext: true, caller: caller)
    }

    /// GenerateDataKeyWithoutPlaintext: the same, sealed form only.
    public func generateDataKeyWithoutPlaintext(keyID: String, keySpec: DataKeySpec? = nil, numberOfBytes: Int? = nil,
                                                encryptionContext: EncryptionContext = [:], caller: Caller) throws -> GenerateDataKeyResponse {
        try generateDataKey(.generateDataKeyWithoutPlaintext, keyID: keyID, keySpec: keySpec, numberOfBytes: numberOfBytes,
                            encryptionContext: encryptionContext, returnPlaintext: false, caller: caller)
    }

    private func generateDataKey(_ operation: KMSOperation, keyID: String, keySpec: DataKeySpec?, numberOfBytes: Int?,
                                 encryptionContext: EncryptionContext, returnPlaintext: Bool, caller: Caller) throws -> GenerateDataKeyResponse {
        let action = operation.actions[0]
        return try perform(operation, caller, context: encryptionContext) { record, state in
            let count: Int
            switch (keySpec, numberOfBytes) {
            case let (spec?, nil): count = spec.byteCount
            case let (nil, bytes?):
                try Validate.range(bytes, "numberOfBytes", 1...1024)
                count = bytes
            default:
                throw KMSError(.validation, "Please specify either number of bytes or key spec.")
            }
            try Validate.encryptionContext(encryptionContext)
            let key = try usableKey(keyID, action: action, for: caller, context: encryptionContext, in: state, record: &record)
            try Self.requireSymmetric(.symmetricDefault, key.record)
            try Self.endDryRun(caller)
            let dataKey = try SecretBytes.random(count: count)
            let blob = try sealBlob(dataKey, key: key, context: encryptionContext, for: record)
            return GenerateDataKeyResponse(ciphertextBlob: blob, plaintext: returnPlaintext ? dataKey : nil, keyId: key.record.arn)
        }
    }
}
