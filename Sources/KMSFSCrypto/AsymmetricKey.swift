internal import COpenSSL
import Synchronization

/// A key pair (or a public key alone) held by OpenSSL, for the asymmetric key specs of the key
/// service: RSA, the NIST and SECG elliptic curves, Ed25519.
///
/// The private half leaves OpenSSL only as PKCS#8 DER in a ``SecretBytes`` (to be sealed, or to be
/// handed out as a data key pair's private key); the public half as DER SubjectPublicKeyInfo, the
/// form AWS's GetPublicKey returns and OpenSSL, Python's `cryptography` and Java all read.
/// Thread-safe: OpenSSL's EVP_PKEY may be used by several threads at once for these operations.
public final class AsymmetricKey: @unchecked Sendable {
    /// What a key is: the families of AWS's key specs.
    public enum Kind: Equatable, Sendable {
        case rsa(bits: Int)
        case ec(Curve)
        case ed25519
        /// SM2 (GB/T 32918) on its own curve, with SM3.
        case sm2
    }

    /// OpenSSL's group names, by the curve AWS's key spec names.
    public enum Curve: String, Sendable, CaseIterable {
        case p256 = "prime256v1", p384 = "secp384r1", p521 = "secp521r1", secp256k1 = "secp256k1"
    }

    /// The digests signing and OAEP use.
    public typealias Digest = DigestAlgorithm

    /// How a signature is made: RSA's two paddings, ECDSA (DER-encoded, as AWS returns it), or
    /// Ed25519 (over the message itself).
    public enum Scheme: Sendable {
        case rsaPKCS1(Digest), rsaPSS(Digest), ecdsa(Digest), ed25519
        /// SM2DSA with SM3 and the default distinguishing ID (AWS's SM2DSA).
        case sm2

        var digest: Digest? {
            switch self {
            case let .rsaPKCS1(digest), let .rsaPSS(digest), let .ecdsa(digest): return digest
            case .ed25519, .sm2: return nil
            }
        }

        var padding: Int32 {
            switch self {
            case .rsaPKCS1: return RSA_PKCS1_PADDING
            case .rsaPSS: return RSA_PKCS1_PSS_PADDING
            case .ecdsa, .ed25519, .sm2: return 0
            }
        }
    }

    private let key: OpaquePointer
    /// Signing and verifying contexts set up for one scheme each, lent to one call at a time
    /// (``withSignatureContext(verify:_:_:)``).
    private let signatureContexts = Mutex<[SignatureContextKind: [SignatureContext]]>([:])
    /// Idle contexts kept per scheme: a key serves as many calls at once as kmsd has threads.
    private static let maximumIdleContexts = 8
    public let kind: Kind
    /// Whether the private half is here (false for a key read from a SubjectPublicKeyInfo).
    public let isPrivate: Bool

    private init(key: OpaquePointer, isPrivate: Bool) throws(CryptoError) {
        self.key = key
        self.isPrivate = isPrivate
        guard let kind = Self.kind(of: key) else {
            EVP_PKEY_free(key)
            throw .openSSL(operation: "key type", reason: "not an RSA, EC (P-256, P-384, P-521, secp256k1), Ed25519 or SM2 key")
        }
        self.kind = kind
    }

    deinit {
        signatureContexts.withLock { contexts in
            for context in contexts.values.joined() { EVP_PKEY_CTX_free(context.pointer) }
        }
        EVP_PKEY_free(key)
    }

    private struct SignatureContextKind: Hashable {
        var verify: Bool
        var digest: Digest
        var padding: Int32
    }

    /// An EVP_PKEY_CTX, owned by the pool while idle and by one call while lent.
    private struct SignatureContext: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    /// Runs `body` with a context of this key set up for `scheme` (which has a digest), made on
    /// first need and returned afterwards; nil if OpenSSL cannot make one.
    private func withSignatureContext<R>(verify: Bool, _ scheme: Scheme, _ digest: Digest,
                                         _ body: (OpaquePointer) -> R) -> R? {
        let kind = SignatureContextKind(verify: verify, digest: digest, padding: scheme.padding)
        guard let context = signatureContexts.withLock({ $0[kind]?.popLast() })
            ?? COpenSSL_signature_ctx(key, verify ? 1 : 0, digest.md, scheme.padding).map(SignatureContext.init)
        else { return nil }
        defer {
            let kept = signatureContexts.withLock { contexts in
                guard contexts[kind, default: []].count < Self.maximumIdleContexts else { return false }
                contexts[kind, default: []].append(context)
                return true
            }
            if !kept { EVP_PKEY_CTX_free(context.pointer) }
        }
        return body(context.pointer)
    }

    /// A new key pair of `kind`.
    public static func generate(_ kind: Kind) throws(CryptoError) -> AsymmetricKey {
        let made: OpaquePointer?
        switch kind {
        case let .rsa(bits): made = COpenSSL_generate_key("RSA", Int32(bits), nil)
        case let .ec(curve): made = curve.rawValue.withCString { COpenSSL_generate_key("EC", 0, $0) }
        case .ed25519: made = COpenSSL_generate_key("ED25519", 0, nil)
        case .sm2: made = COpenSSL_generate_key("SM2", 0, nil)
        }
        guard let made else { throw .fromOpenSSL("key generation") }
        return try AsymmetricKey(key: made, isPrivate: true)
    }

    /// A private key from PKCS#8 DER (what ``privateKeyDER()`` returns).
    public convenience init(privateKeyDER der: SecretBytes) throws(CryptoError) {
        let parsed: OpaquePointer? = der.withUnsafeBytes { bytes in
            var pointer = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
            return d2i_AutoPrivateKey(nil, &pointer, bytes.count)
        }
        guard let parsed else { throw .fromOpenSSL("d2i_AutoPrivateKey") }
        try self.init(key: parsed, isPrivate: true)
    }

    /// Whether this private key is sound, for material that came from outside (a peer): OpenSSL's
    /// full check (the private value in range, the public key on the curve and its own), and for
    /// SM2 a private value below n − 1 — signing loops forever on d = n − 1, where 1 + d has no
    /// inverse.
    public func isSound() -> Bool {
        guard isPrivate, let context = EVP_PKEY_CTX_new_from_pkey(nil, key, nil) else { return false }
        defer { EVP_PKEY_CTX_free(context) }
        let checked = EVP_PKEY_check(context)
        ERR_clear_error()
        // -2: no check for this type (Ed25519 keys are their seed: any 32 bytes is a key).
        guard checked == 1 || checked == -2 else { return false }
        guard kind == .sm2 else { return true }
        var d: OpaquePointer?
        guard EVP_PKEY_get_bn_param(key, "priv", &d) == 1, let d else {
            ERR_clear_error()
            return false
        }
        defer { BN_clear_free(d) }
        guard let group = EC_GROUP_new_by_curve_name(NID_sm2) else { return false }
        defer { EC_GROUP_free(group) }
        guard let order = EC_GROUP_get0_order(group), let limit = BN_dup(order) else { return false }
        defer { BN_free(limit) }
        guard BN_sub_word(limit, 1) == 1 else { return false }
        return BN_is_zero(d) == 0 && BN_cmp(d, limit) < 0
    }

    /// A public key from DER SubjectPublicKeyInfo.
    public convenience init(publicKeyDER der: [UInt8]) throws(CryptoError) {
        let parsed: OpaquePointer? = der.withUnsafeBytes { bytes in
            var pointer = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
            return d2i_PUBKEY(nil, &pointer, bytes.count)
        }
        guard let parsed else { throw .fromOpenSSL("d2i_PUBKEY") }
        try self.init(key: parsed, isPrivate: false)
    }

    private static func kind(of key: OpaquePointer) -> Kind? {
        if EVP_PKEY_is_a(key, "RSA") == 1 { return .rsa(bits: Int(EVP_PKEY_get_bits(key))) }
        if EVP_PKEY_is_a(key, "ED25519") == 1 { return .ed25519 }
        if EVP_PKEY_is_a(key, "SM2") == 1 { return .sm2 }
        guard EVP_PKEY_is_a(key, "EC") == 1 else { return nil }
        var group = [CChar](repeating: 0, count: 64)
        guard COpenSSL_key_group(key, &group, group.count) == 1 else {
            _ = CryptoError.fromOpenSSL("EC group")  // drain the queue
            return nil
        }
        let name = String(decoding: group.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return Curve(rawValue: name).map { .ec($0) }
    }

    /// The private key as PKCS#8 DER.
    public func privateKeyDER() throws(CryptoError) -> SecretBytes {
        precondition(isPrivate, "a public key has no private half")
        var der: UnsafeMutablePointer<UInt8>?
        let length = COpenSSL_private_key_der(key, &der)
        guard length > 0, let der else { throw .fromOpenSSL("i2d_PKCS8_PRIV_KEY_INFO") }
        defer { COpenSSL_clear_free(der, Int(length)) }
        return SecretBytes(copying: UnsafeBufferPointer(start: der, count: Int(length)))
    }

    /// The public key as DER SubjectPublicKeyInfo.
    public func publicKeyDER() throws(CryptoError) -> [UInt8] {
        var der: UnsafeMutablePointer<UInt8>?
        let length = i2d_PUBKEY(key, &der)
        guard length > 0, let der else { throw .fromOpenSSL("i2d_PUBKEY") }
        defer { COpenSSL_free(der) }
        return Array(UnsafeBufferPointer(start: der, count: Int(length)))
    }

    /// The largest signature or RSA ciphertext this key makes.
    private var outputCapacity: Int { max(Int(EVP_PKEY_get_size(key)), 16) }

    /// Signs `message`, or with `prehashed` its digest (of the scheme's digest's length).
    public func sign(_ message: [UInt8], scheme: Scheme, prehashed: Bool = false) throws(CryptoError) -> [UInt8] {
        precondition(isPrivate, "a public key cannot sign")
        var signature = [UInt8](repeating: 0, count: outputCapacity)
        var length = signature.count
        let ok = message.withUnsafeBufferPointer { message in
            if case .sm2 = scheme {
                return COpenSSL_sm2_sign(key, 0, prehashed ? 1 : 0, message.baseAddress, message.count, &signature, &length)
            }
            guard let digest = scheme.digest else {  // Ed25519 signs the message in one pass
                return COpenSSL_sign_message(key, message.baseAddress, message.count, &signature, &length)
            }
            return withSignatureContext(verify: false, scheme, digest) { context in
                COpenSSL_signature_with(context, 0, digest.md, prehashed ? 1 : 0, message.baseAddress, message.count, &signature, &length)
            } ?? 0
        }
        guard ok == 1 else { throw .fromOpenSSL("sign") }
        return Array(signature.prefix(length))
    }

    /// Whether `signature` is valid for `message` (or its digest).
    public func verify(_ signature: [UInt8], for message: [UInt8], scheme: Scheme, prehashed: Bool = false) -> Bool {
        let ok = message.withUnsafeBufferPointer { message in
            signature.withUnsafeBufferPointer { signature in
                if case .sm2 = scheme {
                    var length = signature.count
                    return COpenSSL_sm2_sign(key, 1, prehashed ? 1 : 0, message.baseAddress, message.count,
                                             UnsafeMutablePointer(mutating: signature.baseAddress), &length)
                }
                guard let digest = scheme.digest else {
                    return COpenSSL_verify_message(key, message.baseAddress, message.count, signature.baseAddress, signature.count)
                }
                var length = signature.count
                return withSignatureContext(verify: true, scheme, digest) { context in
                    COpenSSL_signature_with(context, 1, digest.md, prehashed ? 1 : 0, message.baseAddress, message.count,
                                            UnsafeMutablePointer(mutating: signature.baseAddress), &length)
                } ?? 0
            }
        }
        if ok != 1 { ERR_clear_error() }  // a bad signature is an answer, not a fault
        return ok == 1
    }

    /// RSAES-OAEP encryption with `digest` (label hash and MGF1).
    public func encryptOAEP(_ plaintext: SecretBytes, digest: Digest) throws(CryptoError) -> [UInt8] {
        var ciphertext = [UInt8](repeating: 0, count: outputCapacity)
        var length = ciphertext.count
        let ok = plaintext.withUnsafeBytes { plain in
            COpenSSL_oaep(key, 1, digest.md, plain.baseAddress?.assumingMemoryBound(to: UInt8.self), plain.count, &ciphertext, &length)
        }
        guard ok == 1 else { throw .fromOpenSSL("RSA OAEP encrypt") }
        return Array(ciphertext.prefix(length))
    }

    /// RSAES-OAEP decryption; ``CryptoError/authenticationFailure`` when the ciphertext does not
    /// decrypt under this key with this digest.
    public func decryptOAEP(_ ciphertext: [UInt8], digest: Digest) throws(CryptoError) -> SecretBytes {
        precondition(isPrivate, "a public key cannot decrypt")
        var plain = [UInt8](repeating: 0, count: outputCapacity)
        defer { plain.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        var length = plain.count
        let ok = ciphertext.withUnsafeBufferPointer { COpenSSL_oaep(key, 0, digest.md, $0.baseAddress, $0.count, &plain, &length) }
        guard ok == 1 else {
            ERR_clear_error()
            throw .authenticationFailure
        }
        return SecretBytes(copying: plain.prefix(length))
    }

    /// The ECDH shared secret with `peer` (a public key on the same curve).
    public func deriveSharedSecret(with peer: AsymmetricKey) throws(CryptoError) -> SecretBytes {
        precondition(isPrivate, "a public key cannot derive")
        var secret = [UInt8](repeating: 0, count: 133)
        defer { secret.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        var length = secret.count
        if kind == .sm2 {
            guard peer.kind == .sm2, COpenSSL_sm2_ecdh(key, peer.key, &secret, &length) == 1 else { throw .fromOpenSSL("SM2 ECDH") }
            return SecretBytes(copying: secret.prefix(length))
        }
        guard COpenSSL_derive(key, peer.key, &secret, &length) == 1 else { throw .fromOpenSSL("ECDH") }
        return SecretBytes(copying: secret.prefix(length))
    }

    /// SM2 public-key encryption (SM2PKE), the ciphertext in its ASN.1 DER form.
    public func encryptSM2(_ plaintext: SecretBytes) throws(CryptoError) -> [UInt8] {
        var ciphertext = [UInt8](repeating: 0, count: plaintext.count + 160)
        var length = ciphertext.count
        let ok = plaintext.withUnsafeBytes { plain in
            COpenSSL_sm2_crypt(key, 1, plain.baseAddress?.assumingMemoryBound(to: UInt8.self), plain.count, &ciphertext, &length)
        }
        guard ok == 1 else { throw .fromOpenSSL("SM2 encrypt") }
        return Array(ciphertext.prefix(length))
    }

    /// SM2PKE decryption; ``CryptoError/authenticationFailure`` when the ciphertext does not decrypt.
    public func decryptSM2(_ ciphertext: [UInt8]) throws(CryptoError) -> SecretBytes {
        precondition(isPrivate, "a public key cannot decrypt")
        var plain = [UInt8](repeating: 0, count: ciphertext.count)
        defer { plain.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        var length = plain.count
        let ok = ciphertext.withUnsafeBufferPointer { COpenSSL_sm2_crypt(key, 0, $0.baseAddress, $0.count, &plain, &length) }
        guard ok == 1 else {
            ERR_clear_error()
            throw .authenticationFailure
        }
        return SecretBytes(copying: plain.prefix(length))
    }
}
