import KMSFSCrypto

public struct GetPublicKeyResponse: Sendable {
    public var keyId: String
    /// DER SubjectPublicKeyInfo.
    public var publicKey: [UInt8]
    public var keySpec: KeySpec
    public var keyUsage: KeyUsage
    public var encryptionAlgorithms: [EncryptionAlgorithm]
    public var signingAlgorithms: [SigningAlgorithm]
    public var keyAgreementAlgorithms: [KeyAgreementAlgorithm]
}

public struct DeriveSharedSecretResponse: Sendable {
    public var keyId: String
    public var sharedSecret: SecretBytes
    public var keyAgreementAlgorithm: KeyAgreementAlgorithm
    public var keyOrigin: Origin
}

extension KMSEngine {
    /// GetPublicKey: the public half of an asymmetric key, for use outside the service
    /// (verifying, encrypting, agreeing) — with what the key may be used for.
    public func getPublicKey(keyID: String, caller: Caller) throws -> GetPublicKeyResponse {
        try perform(.getPublicKey, caller) { record, state in
            let key = try usableKey(keyID, action: .getPublicKey, for: caller, in: state, record: &record)
            guard key.record.spec.isAsymmetric else {
                throw KMSError(.unsupportedOperation, "\(key.record.arn) is a \(key.record.spec.rawValue) key: only asymmetric keys have a public key")
            }
            let publicKey: [UInt8]
            if case let .mlDSA(mlDSA) = try Self.currentMaterial(key) { publicKey = mlDSA.publicKeyDER() } else { publicKey = try Self.keyPair(key).publicKeyDER() }
            try Self.endDryRun(caller)
            let (spec, usage) = (key.record.spec, key.record.usage)
            return GetPublicKeyResponse(keyId: key.record.arn, publicKey: publicKey, keySpec: spec, keyUsage: usage,
                                        encryptionAlgorithms: spec.encryptionAlgorithms(usage), signingAlgorithms: spec.signingAlgorithms(usage),
                                        keyAgreementAlgorithms: spec.keyAgreementAlgorithms(usage))
        }
    }

    /// DeriveSharedSecret: ECDH between the key's private half and `publicKey` (DER
    /// SubjectPublicKeyInfo on the same curve); the raw shared secret, as AWS returns it.
    public func deriveSharedSecret(keyID: String, keyAgreementAlgorithm: KeyAgreementAlgorithm, publicKey: [UInt8],
                                   caller: Caller) throws -> DeriveSharedSecretResponse {
        try perform(.deriveSharedSecret, caller) { record, state in
            let key = try usableKey(keyID, action: .deriveSharedSecret, for: caller,
                                    extra: ["kms:keyagreementalgorithm": [keyAgreementAlgorithm.rawValue]], in: state, record: &record)
            try Self.requireUsage(.keyAgreement, key.record, for: "DeriveSharedSecret")
            try Validate.sensitiveLength(publicKey.count, member: "publicKey", 1...8192)
            let pair = try Self.keyPair(key)
            guard let peer = try? AsymmetricKey(publicKeyDER: publicKey), peer.kind == pair.kind else {
                throw KMSError(.validation, "The public key is not a DER SubjectPublicKeyInfo on the curve of \(key.record.arn) (\(key.record.spec.rawValue))")
            }
            try Self.endDryRun(caller)
            return DeriveSharedSecretResponse(keyId: key.record.arn, sharedSecret: try pair.deriveSharedSecret(with: peer),
                                              keyAgreementAlgorithm: keyAgreementAlgorithm, keyOrigin: key.record.origin)
        }
    }
}
