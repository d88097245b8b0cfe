internal import COpenSSL

/// One OpenSSL AES-256-GCM context, keyed once and reused for any number of seals and opens.
///
/// The key schedule and GHASH tables are computed in `init`; each operation only sets a nonce,
/// so per-chunk cost is the cipher itself. Seal and open may alternate on the same context.
///
/// Not thread-safe: one thread at a time. It is `@unchecked Sendable` only so that an
/// ``AESGCMContextPool`` can hand it from thread to thread; the pool guarantees exclusivity.
public final class AESGCMContext: KeyedContext, @unchecked Sendable {
    private let context: OpaquePointer
    private let reservoir = RandomReservoir()

    /// The cipher, fetched once: passing `EVP_aes_256_gcm()` to every init would re-fetch it
    /// from the provider each time under OpenSSL 3.
    /// `nonisolated(unsafe)`: written once by the lazy initializer; OpenSSL cipher objects are
    /// immutable and safe to share between threads.
    nonisolated(unsafe) private static let cipher: OpaquePointer? = EVP_CIPHER_fetch(nil, "AES-256-GCM", nil)

    /// Creates a context keyed with `key` (32 bytes).
    /// - Throws: ``CryptoError/openSSL(operation:reason:)`` if OpenSSL cannot set it up.
    public init(key: SecretBytes) throws(CryptoError) {
        precondition(key.count == AESGCM.keyByteCount, "AES-256-GCM takes a 32-byte key")
        guard let cipher = Self.cipher else { throw CryptoError.fromOpenSSL("EVP_CIPHER_fetch") }
        guard let context = EVP_CIPHER_CTX_new() else { throw CryptoError.fromOpenSSL("EVP_CIPHER_CTX_new") }
        self.context = context
        let ok = key.withUnsafeBytes { key in
            EVP_CipherInit_ex(context, cipher, nil, key.baseAddress?.assumingMemoryBound(to: UInt8.self), nil, 1)
        }
        guard ok == 1 else { throw CryptoError.fromOpenSSL("EVP_CipherInit_ex") }
    }

    /// Fills `nonces` with random bytes (RAND_bytes output, fetched in batches by this context).
    public func randomNonces(_ nonces: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        try reservoir.fill(nonces)
    }

    deinit {
        // EVP_CIPHER_CTX_free clears the key schedule before freeing it.
        EVP_CIPHER_CTX_free(context)
    }

    /// Seals `plaintext` into `ciphertext` (same length; may be the same memory) and writes the tag.
    public func seal(
        nonce: UnsafeRawBufferPointer,
        additionalData: UnsafeRawBufferPointer,
        plaintext: UnsafeRawBufferPointer,
        ciphertext: UnsafeMutableRawBufferPointer,
        tag: UnsafeMutableRawBufferPointer
    ) throws(CryptoError) {
        precondition(ciphertext.count == plaintext.count && tag.count == AESGCM.tagByteCount)
        try start(nonce: nonce, additionalData: additionalData, encrypting: true)
        try EVPGCM.update(context, input: plaintext, output: ciphertext)
        try EVPGCM.finishSeal(context, tag: tag)
    }

    /// Opens `ciphertext` into `plaintext` (same length; may be the same memory) if `tag` verifies.
    ///
    /// - Throws: ``CryptoError/authenticationFailure``. On any failure `plaintext` is zeroed, so
    ///   unauthenticated bytes never reach a caller who ignores the error.
    public func open(
        nonce: UnsafeRawBufferPointer,
        additionalData: UnsafeRawBufferPointer,
        ciphertext: UnsafeRawBufferPointer,
        tag: UnsafeRawBufferPointer,
        plaintext: UnsafeMutableRawBufferPointer
    ) throws(CryptoError) {
        precondition(ciphertext.count == plaintext.count && tag.count == AESGCM.tagByteCount)
        do throws(CryptoError) {
            try start(nonce: nonce, additionalData: additionalData, encrypting: false)
            try EVPGCM.update(context, input: ciphertext, output: plaintext)
            try EVPGCM.finishOpen(context, tag: tag)
        } catch {
            SecretBytes.wipe(plaintext)
            throw error
        }
    }

    /// Sets the direction and nonce (the key stays) and feeds the additional data.
    private func start(
        nonce: UnsafeRawBufferPointer, additionalData: UnsafeRawBufferPointer, encrypting: Bool
    ) throws(CryptoError) {
        precondition(nonce.count == AESGCM.nonceByteCount, "AES-GCM nonces are 12 bytes here")
        let noncePointer = nonce.baseAddress?.assumingMemoryBound(to: UInt8.self)
        guard EVP_CipherInit_ex(context, nil, nil, nil, noncePointer, encrypting ? 1 : 0) == 1 else {
            throw CryptoError.fromOpenSSL("EVP_CipherInit_ex")
        }
        try EVPGCM.additionalData(context, additionalData)
    }
}
