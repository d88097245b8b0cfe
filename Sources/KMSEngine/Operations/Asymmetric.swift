import KMSFSCrypto

/// What the operations of asymmetric and HMAC keys share: finding the key pair or HMAC key of a
/// key, checking that its usage and spec allow the algorithm asked for, and RSA-OAEP.
extension KMSEngine {
    /// The material asymmetric and HMAC keys use: their one version (they do not rotate).
    static func currentMaterial(_ key: LiveKey) throws(KMSError) -> KeyMaterial {
        guard let version = key.record.currentVersion, let material = key.material[version.version] else {
            throw KMSError(.invalidState, "\(key.record.arn) has no key material.")
        }
        return material
    }

    static func keyPair(_ key: LiveKey) throws(KMSError) -> AsymmetricKey {
        guard case let .asymmetric(pair) = try currentMaterial(key) else {
            throw KMSError(.unsupportedOperation, "\(key.record.arn) is not an asymmetric key (its key spec is \(key.record.spec.rawValue))")
        }
        return pair
    }

    /// Checks that `key` has `usage`; InvalidKeyUsageException in AWS's terms otherwise.
    static func requireUsage(_ usage: KeyUsage, _ key: KeyRecord, for operation: String) throws(KMSError) {
        guard key.usage == usage else {
            throw KMSError(.invalidKeyUsage, "\(key.arn) key usage is \(key.usage.rawValue) which is not valid for \(operation).")
        }
    }

    /// Checks that an ENCRYPT_DECRYPT key takes `algorithm` (SYMMETRIC_DEFAULT for symmetric
    /// keys, RSAES_OAEP_SHA_1/256 for RSA keys).
    static func requireEncryptionAlgorithm(_ algorithm: EncryptionAlgorithm, _ key: KeyRecord, for operation: String) throws(KMSError) {
        try requireUsage(.encryptDecrypt, key, for: operation)
        guard key.spec.encryptionAlgorithms(key.usage).contains(algorithm) else {
            throw KMSError(.invalidKeyUsage, "\(key.arn) does not support the \(algorithm.rawValue) encryption algorithm "
                           + "(it supports \(key.spec.encryptionAlgorithms(key.usage).map(\.rawValue).joined(separator: ", ")))")
        }
    }

    /// The largest plaintext SM2PKE takes (AWS's table).
    static let sm2PlaintextLimit = 1024

    /// The largest plaintext RSAES-OAEP takes: the modulus's bytes less twice the digest and 2
    /// (AWS's table: RSA_2048 214 with SHA-1, 190 with SHA-256; RSA_3072 342/318; RSA_4096 470/446).
    static func oaepPlaintextLimit(_ key: AsymmetricKey, _ digest: AsymmetricKey.Digest) -> Int {
        guard case let .rsa(bits) = key.kind else { return 0 }
        return bits / 8 - 2 * digest.byteCount - 2
    }

    /// Encrypt with an RSA key: the ciphertext is RSA's own (no blob: anyone with the public key
    /// can make one), so there is no encryption context to bind.
    func encryptAsymmetric(_ plaintext: SecretBytes, key: LiveKey, algorithm: EncryptionAlgorithm,
                           context: EncryptionContext) throws -> [UInt8] {
        guard context.isEmpty else {
            throw KMSError(.validation, "An encryption context is not supported with asymmetric keys (\(key.record.arn))")
        }
        let pair = try Self.keyPair(key)
        if algorithm == .sm2PKE {
            guard pair.kind == .sm2 else { throw KMSError(.invalidKeyUsage, "\(key.record.arn) does not encrypt with SM2PKE") }
            guard plaintext.count <= Self.sm2PlaintextLimit else {
                throw KMSError(.validation, "Plaintext is \(plaintext.count) bytes; SM2 with SM2PKE takes at most \(Self.sm2PlaintextLimit)")
            }
            return try pair.encryptSM2(plaintext)
        }
        guard let digest = algorithm.oaepDigest else {
            throw KMSError(.invalidKeyUsage, "\(key.record.arn) does not encrypt with \(algorithm.rawValue)")
        }
        let limit = Self.oaepPlaintextLimit(pair, digest)
        guard plaintext.count <= limit else {
            throw KMSError(.validation, "Plaintext is \(plaintext.count) bytes; \(key.record.spec.rawValue) with \(algorithm.rawValue) takes at most \(limit)")
        }
        return try pair.encryptOAEP(plaintext, digest: digest)
    }

    /// Decrypt with an RSA key; a ciphertext that does not decrypt is InvalidCiphertextException.
    func decryptAsymmetric(_ ciphertext: [UInt8], key: LiveKey, algorithm: EncryptionAlgorithm,
                           context: EncryptionContext) throws -> SecretBytes {
        guard context.isEmpty else {
            throw KMSError(.validation, "An encryption context is not supported with asymmetric keys (\(key.record.arn))")
        }
        do {
            if algorithm == .sm2PKE { return try Self.keyPair(key).decryptSM2(ciphertext) }
            guard let digest = algorithm.oaepDigest else {
                throw KMSError(.invalidKeyUsage, "\(key.record.arn) does not decrypt with \(algorithm.rawValue)")
            }
            return try Self.keyPair(key).decryptOAEP(ciphertext, digest: digest)
        } catch CryptoError.authenticationFailure {
            throw KMSError(.invalidCiphertext, "The ciphertext is invalid for \(key.record.arn) with \(algorithm.rawValue)")
        }
    }
}
