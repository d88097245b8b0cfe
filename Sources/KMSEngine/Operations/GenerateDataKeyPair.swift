import KMSFSCrypto

public struct GenerateDataKeyPairResponse: Sendable {
    /// The private key (PKCS#8 DER) sealed under the symmetric key, as a ciphertext blob.
    public var privateKeyCiphertextBlob: [UInt8]
    /// PKCS#8 DER; nil for GenerateDataKeyPairWithoutPlaintext.
    public var privateKeyPlaintext: SecretBytes?
    /// DER SubjectPublicKeyInfo.
    public var publicKey: [UInt8]
    public var keyId: String
    public var keyPairSpec: DataKeyPairSpec
}

extension KMSEngine {
    /// GenerateDataKeyPair: a new key pair for use outside the service, its private key sealed
    /// under a symmetric key with `encryptionContext` (Decrypt opens it like any blob).
    public func generateDataKeyPair(keyID: String, keyPairSpec: DataKeyPairSpec, encryptionContext: EncryptionContext = [:],
                                    caller: Caller) throws -> GenerateDataKeyPairResponse {
        try generateDataKeyPair(.generateDataKeyPair, keyID: keyID, keyPairSpec: keyPairSpec, encryptionContext: encryptionContext,
                                returnPlaintext: true, caller: caller)
    }

    /// GenerateDataKeyPairWithoutPlaintext: the same without the plaintext private key.
    public func generateDataKeyPairWithoutPlaintext(keyID: String, keyPairSpec: DataKeyPairSpec, encryptionContext: EncryptionContext = [:],
                                                    caller: Caller) throws -> GenerateDataKeyPairResponse {
        try generateDataKeyPair(.generateDataKeyPairWithoutPlaintext, keyID: keyID, keyPairSpec: keyPairSpec,
                                encryptionContext: encryptionContext, returnPlaintext: false, caller: caller)
    }

    private func generateDataKeyPair(_ operation: KMSOperation, keyID: String, keyPairSpec: DataKeyPairSpec, encryptionContext: EncryptionContext,
                                     returnPlaintext: Bool, caller: Caller) throws -> GenerateDataKeyPairResponse {
        let action = operation.actions[0]
        return try perform(operation, caller, context: encryptionContext) { record, state in
            try Validate.encryptionContext(encryptionContext)
            let key = try usableKey(keyID, action: action, for: caller, context: encryptionContext,
                                    extra: ["kms:datakeypairspec": [keyPairSpec.rawValue]], in: state, record: &record)
            try Self.requireSymmetric(.symmetricDefault, key.record)
            guard let kind = keyPairSpec.keySpec.asymmetricKind else {
                throw KMSError(.unsupportedOperation, "KeyPairSpec \(keyPairSpec.rawValue) is not supported by this key service")
            }
            if key.record.customKeyStoreID != nil {
                throw KMSError(.unsupportedOperation, "GenerateDataKeyPair does not take a key in a custom key store (\(key.record.arn))")
            }
            try Self.endDryRun(caller)
            let pair = try AsymmetricKey.generate(kind)
            let privateKey = try pair.privateKeyDER()
            let blob = try sealBlob(privateKey, key: key, context: encryptionContext, for: record)
            return GenerateDataKeyPairResponse(privateKeyCiphertextBlob: blob, privateKeyPlaintext: returnPlaintext ? privateKey : nil,
                                               publicKey: try pair.publicKeyDER(), keyId: key.record.arn, keyPairSpec: keyPairSpec)
        }
    }
}
