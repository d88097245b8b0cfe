import KMSFSCrypto

public struct SignResponse: Sendable {
    public var keyId: String
    public var signature: [UInt8]
    public var signingAlgorithm: SigningAlgorithm
}

public struct VerifyResponse: Sendable {
    public var keyId: String
    public var signatureValid: Bool
    public var signingAlgorithm: SigningAlgorithm
}

extension KMSEngine {
    /// Sign: a signature by the key's private half, which never leaves the service. `message`
    /// is the message itself (RAW, up to 4096 bytes) or its digest (DIGEST, exactly the length
    /// of the algorithm's digest), as AWS takes them.
    public func sign(keyID: String, message: [UInt8], messageType: MessageType = .raw, signingAlgorithm: SigningAlgorithm,
                     caller: Caller) throws -> SignResponse {
        try perform(.sign, caller) { record, state in
            let key = try usableKey(keyID, action: .sign, for: caller, extra: Self.signingConditions(signingAlgorithm, messageType),
                                    in: state, record: &record)
            let (pair, scheme) = try Self.signer(key, signingAlgorithm, messageType, message)
            try Self.endDryRun(caller)
            let signature = try pair.sign(message, scheme: scheme, prehashed: messageType == .digest)
            return SignResponse(keyId: key.record.arn, signature: signature, signingAlgorithm: signingAlgorithm)
        }
    }

    /// Verify: KMSInvalidSignatureException when the signature is not valid, as AWS answers.
    public func verify(keyID: String, message: [UInt8], messageType: MessageType = .raw, signature: [UInt8],
                       signingAlgorithm: SigningAlgorithm, caller: Caller) throws -> VerifyResponse {
        try perform(.verify, caller) { record, state in
            let key = try usableKey(keyID, action: .verify, for: caller, extra: Self.signingConditions(signingAlgorithm, messageType),
                                    in: state, record: &record)
            let (pair, scheme) = try Self.signer(key, signingAlgorithm, messageType, message)
            try Validate.sensitiveLength(signature.count, member: "signature", 1...6144)
            try Self.endDryRun(caller)
            guard pair.verify(signature, for: message, scheme: scheme, prehashed: messageType == .digest) else {
                throw KMSError(.kmsInvalidSignature, "The signature is not valid for \(key.record.arn) with \(signingAlgorithm.rawValue)")
            }
            return VerifyResponse(keyId: key.record.arn, signatureValid: true, signingAlgorithm: signingAlgorithm)
        }
    }

    static func signingConditions(_ algorithm: SigningAlgorithm, _ type: MessageType) -> [String: [String]] {
        ["kms:signingalgorithm": [algorithm.rawValue], "kms:messagetype": [type.rawValue]]
    }

    /// The key pair and scheme for signing `message` with `algorithm`, after AWS's checks: a
    /// SIGN_VERIFY key, an algorithm of its spec, a message of the right size for its type.
    static func signer(_ key: LiveKey, _ algorithm: SigningAlgorithm, _ type: MessageType,
                       _ message: [UInt8]) throws(KMSError) -> (AsymmetricKey, AsymmetricKey.Scheme) {
        try requireUsage(.signVerify, key.record, for: "Sign and Verify")
        let algorithms = key.record.spec.signingAlgorithms(key.record.usage)
        guard algorithms.contains(algorithm) else {
            throw KMSError(.invalidKeyUsage, "\(key.record.arn) does not support the \(algorithm.rawValue) signing algorithm "
                           + "(it supports \(algorithms.map(\.rawValue).joined(separator: ", ")))")
        }
        guard let scheme = algorithm.scheme else {
            throw KMSError(.unsupportedOperation, "The \(algorithm.rawValue) signing algorithm is not supported by this key service")
        }
        try Validate.sensitiveLength(message.count, member: "message", 1...4096)
        switch type {
        case .raw: break
        case .digest:
            guard let digest = scheme.digestByteCount else {
                throw KMSError(.validation, "\(algorithm.rawValue) signs the message itself: MessageType DIGEST is not valid with it")
            }
            guard message.count == digest else {
                throw KMSError(.validation, "Digest is invalid length for algorithm \(algorithm.rawValue): \(message.count) bytes, not \(digest)")
            }
        case .externalMu:
            throw KMSError(.validation, "MessageType EXTERNAL_MU is valid only with ML-DSA keys")
        }
        return (try keyPair(key), scheme)
    }
}

extension AsymmetricKey.Scheme {
    /// The length of the digest a DIGEST message must have; nil for Ed25519, which signs the message.
    var digestByteCount: Int? {
        switch self {
        case let .rsaPKCS1(digest), let .rsaPSS(digest), let .ecdsa(digest): return digest.byteCount
        case .sm2: return 32  // SM3(Z ‖ M), which the caller computes
        case .ed25519: return nil
        }
    }
}
