internal import COpenSSL

/// XAES-256-GCM (C2SP): AES-256-GCM with a 192-bit nonce, each seal under a key of its own.
///
/// Why: with one data key per file and random 96-bit nonces, plain AES-GCM is safe for about
/// 2^32 seals per key; a database file rewriting one page for years can get there. Here the
/// first 96 bits of the nonce derive a fresh AES-256 key from the file key (two AES blocks, the
/// NIST SP 800-108 counter KDF with CMAC), and GCM runs under it with the other 96 bits. A nonce
/// repeats only if all 192 random bits do: after 2^64 seals under one file key the chance is
/// below 2^-64, and no derived key ever sees more than one or two messages.
///
/// ```
/// L  = AES-256(K, 0^128);  K1 = L·x in GF(2^128) (shift left, 0x87 on carry)
/// Kx = AES-256(K, K1 ⊕ 00 01 'X' 00 ‖ N[0..<12]) ‖ AES-256(K, K1 ⊕ 00 02 'X' 00 ‖ N[0..<12])
/// XAES-256-GCM(K, N, P, A) = AES-256-GCM(Kx, N[12..<24], P, A)
/// ```
///
/// Not thread-safe: one thread at a time (a ``KeyedContextPool`` lends it).
public final class XAESGCMContext: KeyedContext, @unchecked Sendable {
    public static let nonceByteCount = 24

    /// AES-256-ECB under the file key: derives the per-seal keys.
    private let derivation: OpaquePointer
    /// AES-256-GCM, re-keyed for every seal and open.
    private let gcm: OpaquePointer
    /// K1, in a secret buffer of its own (it is a function of the key).
    private let k1: SecretBytes
    private let reservoir = RandomReservoir()

    nonisolated(unsafe) private static let ecb: OpaquePointer? = EVP_CIPHER_fetch(nil, "AES-256-ECB", nil)
    nonisolated(unsafe) private static let gcmCipher: OpaquePointer? = EVP_CIPHER_fetch(nil, "AES-256-GCM", nil)

    public init(key: SecretBytes) throws(CryptoError) {
        precondition(key.count == AESGCM.keyByteCount, "XAES-256-GCM takes a 32-byte key")
        guard let ecb = Self.ecb, let gcmCipher = Self.gcmCipher else { throw CryptoError.fromOpenSSL("EVP_CIPHER_fetch") }
        guard let derivation = EVP_CIPHER_CTX_new() else { throw CryptoError.fromOpenSSL("EVP_CIPHER_CTX_new") }
        guard let gcm = EVP_CIPHER_CTX_new() else {
            EVP_CIPHER_CTX_free(derivation)
            throw CryptoError.fromOpenSSL("EVP_CIPHER_CTX_new")
        }
        self.derivation = derivation
        self.gcm = gcm
        let keyed = key.withUnsafeBytes { key in
            EVP_EncryptInit_ex(derivation, ecb, nil, key.baseAddress?.assumingMemoryBound(to: UInt8.self), nil) == 1
                && EVP_CIPHER_CTX_set_padding(derivation, 0) == 1
                && EVP_CipherInit_ex(gcm, gcmCipher, nil, nil, nil, 1) == 1
        }
        guard keyed else {
            EVP_CIPHER_CTX_free(derivation)
            EVP_CIPHER_CTX_free(gcm)
            throw CryptoError.fromOpenSSL("EVP_EncryptInit_ex")
        }
        var failure: CryptoError?
        k1 = SecretBytes(count: 16) { k1 in
            var zero = [UInt8](repeating: 0, count: 16)
            var outLength: Int32 = 0
            let out = k1.baseAddress!.assumingMemoryBound(to: UInt8.self)
            guard EVP_EncryptUpdate(derivation, out, &outLength, &zero, 16) == 1, outLength == 16 else {
                failure = CryptoError.fromOpenSSL("EVP_EncryptUpdate(ECB)")
                return
            }
            // L·x: shift the 128-bit big-endian value left by one; reduce by 0x87 on carry.
            let carry = out[0] >> 7
            for i in 0..<15 { out[i] = out[i] << 1 | out[i + 1] >> 7 }
            out[15] = out[15] << 1 ^ (carry == 1 ? 0x87 : 0)
        }
        // Every stored property is set: a throw from here runs deinit, which frees the contexts.
        if let failure { throw failure }
    }

    deinit {
        EVP_CIPHER_CTX_free(derivation)
        EVP_CIPHER_CTX_free(gcm)
    }

    /// Fills `nonces` with random bytes (RAND_bytes output, fetched in batches).
    public func randomNonces(_ nonces: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        try reservoir.fill(nonces)
    }

    /// Seals `plaintext` into `ciphertext` (same length; may be the same memory) and writes the tag.
    public func seal(
        nonce: UnsafeRawBufferPointer, additionalData: UnsafeRawBufferPointer,
        plaintext: UnsafeRawBufferPointer, ciphertext: UnsafeMutableRawBufferPointer, tag: UnsafeMutableRawBufferPointer
    ) throws(CryptoError) {
        precondition(ciphertext.count == plaintext.count && tag.count == AESGCM.tagByteCount)
        try start(nonce: nonce, additionalData: additionalData, encrypting: true)
        try EVPGCM.update(gcm, input: plaintext, output: ciphertext)
        try EVPGCM.finishSeal(gcm, tag: tag)
    }

    /// Opens `ciphertext` into `plaintext` if `tag` verifies.
    /// - Throws: ``CryptoError/authenticationFailure``; on any failure `plaintext` is zeroed.
    public func open(
        nonce: UnsafeRawBufferPointer, additionalData: UnsafeRawBufferPointer,
        ciphertext: UnsafeRawBufferPointer, tag: UnsafeRawBufferPointer, plaintext: UnsafeMutableRawBufferPointer
    ) throws(CryptoError) {
        precondition(ciphertext.count == plaintext.count && tag.count == AESGCM.tagByteCount)
        do throws(CryptoError) {
            try start(nonce: nonce, additionalData: additionalData, encrypting: false)
            try EVPGCM.update(gcm, input: ciphertext, output: plaintext)
            try EVPGCM.finishOpen(gcm, tag: tag)
        } catch {
            SecretBytes.wipe(plaintext)
            throw error
        }
    }

    /// Derives this nonce's key, keys GCM with it and the nonce's second half, feeds the
    /// additional data. The derived key lives on the stack only while GCM's schedule is made.
    private func start(nonce: UnsafeRawBufferPointer, additionalData: UnsafeRawBufferPointer, encrypting: Bool) throws(CryptoError) {
        precondition(nonce.count == Self.nonceByteCount, "XAES-256-GCM nonces are 24 bytes")
        var blocks = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))  // M1 ‖ M2, then Kx
        let ok = withUnsafeMutableBytes(of: &blocks) { blocks -> Bool in
            let m = blocks.baseAddress!.assumingMemoryBound(to: UInt8.self)
            for block in 0..<2 {
                let b = m + 16 * block
                b[0] = 0; b[1] = UInt8(block + 1); b[2] = 0x58; b[3] = 0
                for i in 0..<12 { b[4 + i] = nonce[i] }
            }
            k1.withUnsafeBytes { k1 in
                for i in 0..<32 { m[i] ^= k1[i % 16] }
            }
            var outLength: Int32 = 0
            let derived = EVP_EncryptUpdate(derivation, m, &outLength, m, 32) == 1 && outLength == 32
            let keyed = derived && EVP_CipherInit_ex(gcm, nil, nil, m, nonce.baseAddress!.assumingMemoryBound(to: UInt8.self) + 12,
                                                     encrypting ? 1 : 0) == 1
            SecretBytes.wipe(blocks)
            return keyed
        }
        guard ok else { throw CryptoError.fromOpenSSL("XAES-256-GCM key derivation") }
        try EVPGCM.additionalData(gcm, additionalData)
    }
}
