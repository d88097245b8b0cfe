import KMSFSCrypto
import KMSStore

/// One version of a key's material, typed by its spec, ready to use: AES-256 in a pool of keyed
/// GCM contexts, an HMAC key, or an OpenSSL key pair. Stored sealed under the root key as its
/// bytes — the 32 raw bytes, the HMAC key, or the private key's PKCS#8 DER.
enum KeyMaterial: Sendable {
    case symmetric(AESGCMContextPool)
    case hmac(SecretBytes, HMAC.Digest)
    case asymmetric(AsymmetricKey)
    /// ML-DSA (swift-crypto): stored as its 32-byte seed.
    case mlDSA(MLDSAKey)

    /// New material for `spec`.
    static func generate(_ spec: KeySpec) throws -> KeyMaterial {
        if let digest = spec.hmacDigest { return .hmac(try SecretBytes.random(count: digest.byteCount), digest) }
        if let kind = spec.asymmetricKind { return .asymmetric(try AsymmetricKey.generate(kind)) }
        if let level = spec.mlDSALevel { return .mlDSA(try MLDSAKey.generate(level)) }
        precondition(spec == .symmetricDefault, "no material for \(spec.rawValue)")
        return .symmetric(AESGCMContextPool(key: try SecretBytes.random(count: 32), maximumIdle: 8))
    }

    /// Material of `spec` from its stored bytes (unsealed).
    init(spec: KeySpec, bytes: SecretBytes) throws {
        if let digest = spec.hmacDigest {
            self = .hmac(bytes, digest)
        } else if let level = spec.mlDSALevel {
            self = .mlDSA(try MLDSAKey(level: level, seed: bytes))
        } else if let kind = spec.asymmetricKind {
            let key = try AsymmetricKey(privateKeyDER: bytes)
            guard key.kind == kind else { throw StoreError("stored material is a \(key.kind) key, not \(spec.rawValue)") }
            self = .asymmetric(key)
        } else {
            guard bytes.count == 32 else { throw StoreError("stored material is \(bytes.count) bytes, not an AES-256 key") }
            self = .symmetric(AESGCMContextPool(key: bytes, maximumIdle: 8))
        }
    }

    /// The bytes that are sealed and stored.
    func storedBytes() throws -> SecretBytes {
        switch self {
        case let .symmetric(pool): return pool.key
        case let .hmac(key, _): return key
        case let .asymmetric(key): return try key.privateKeyDER()
        case let .mlDSA(key): return key.seed()
        }
    }

    var pool: AESGCMContextPool? {
        if case let .symmetric(pool) = self { return pool }
        return nil
    }
}
