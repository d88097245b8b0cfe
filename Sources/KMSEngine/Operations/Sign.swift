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
            if let mlDSA = try Self.mlDSASigner(key, signingAlgorithm, messageType, message) {
                try Self.endDryRun(caller)
                return SignResponse(keyId: key.record.arn, signature: try mlDSA.sign(message), signingAlgorithm: signingAlgorithm)
            }
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
            let mlDSA = try Self.mlDSASigner(key, signingAlgorithm, messageType, message)
            let (pair, scheme) = mlDSA == nil ? try Self.signer(key, signingAlgorithm, messageType, message) : (nil, nil)
            try Validate.sensitiveLength(signature.count, member: "signature", 1...6144)
            try Self.endDryRun(caller)
            let valid = mlDSA?.verify(signature, for: message)
                ?? pair!.verify(signature, for: message, scheme: scheme!, prehashed: messageType == .digest)
            guard valid else {
                throw KMSError(.kmsInvalidSignature, "The signature is not valid for \(key.record.arn) with \(signingAlgorithm.rawValue)")
            }
            return VerifyResponse(keyId: key.record.arn, signatureValid: true, signingAlgorithm: signingAlgorithm)
        }
    }

    /// The ML-DSA key for `algorithm` (ML_DSA_SHAKE_256 on an ML-DSA key), after AWS's checks;
    /// nil for every other key.
    static func mlDSASigner(_ key: LiveKey, _ algorithm: SigningAlgorithm, _ type: MessageType,
                            _ message: [UInt8]) throws(KMSError) -> MLDSAKey? {
        guard key.record.spec.mlDSALevel != nil else { return nil }
        try requireUsage(.signVerify, key.record, for: "Sign and Verify")
        guard algorithm == .mlDSASHAKE256 else {
            throw KMSError(.invalidKeyUsage, "\(key.record.arn) does not support the \(algorithm.rawValue) signing algorithm (it supports ML_DSA_SHAKE_256)")
        }
        switch type {
        case .raw: try Validate.sensitiveLength(message.count, member: "message", 1...4096)
        case .digest: throw KMSError(.validation, "ML_DSA_SHAKE_256 signs the message itself or its μ: MessageType DIGEST is not valid with it")
        case .externalMu:
            throw KMSError(.unsupportedOperation, "MessageType EXTERNAL_MU is not supported by this key service (its ML-DSA library signs messages only)")
        }
        guard case let .mlDSA(mlDSA) = try currentMaterial(key) else { throw KMSError(.invalidState, "\(key.record.arn) has no key material.") }
        return mlDSA
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
