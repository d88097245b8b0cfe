internal import COpenSSL

/// AES-SIV (RFC 5297) with a 512-bit key (AES-256-SIV): deterministic authenticated encryption.
///
/// Why for names: a name must encrypt the same way every time (a lookup is one backing lookup
/// of the encrypted name, no directory scan), so no nonce; SIV is the mode that stays
/// misuse-resistant without one — equal inputs give equal outputs and nothing more, and any
/// change to the output or to the associated data fails authentication. The output is the
/// 16-byte synthetic IV followed by the ciphertext, as RFC 5297 and Python's `AESSIV` write it.
/// Each element of `associatedData` is one component of the S2V vector.
///
/// Keyed once: each operation copies a keyed context (1.8 µs here) instead of keying a new one
/// (5.2 µs: the CMAC and CTR key schedules and the provider fetches behind them), because a
/// listing decrypts every name in it. The keyed templates are only ever read (copied), which
/// OpenSSL allows from several threads at once.
public final class AESSIV: @unchecked Sendable {
    /// Fetched once: a fetch searches OpenSSL's provider store.
    /// An EVP_CIPHER is immutable and may be shared between threads.
    nonisolated(unsafe) private static let cipher: OpaquePointer? = EVP_CIPHER_fetch(nil, "AES-256-SIV", nil)

    public static let keyByteCount = 64
    public static let tagByteCount = 16

    private let sealing: OpaquePointer
    private let opening: OpaquePointer

    /// - Throws: ``CryptoError`` for a key that is not 64 bytes, or if OpenSSL refuses it.
    public init(key: SecretBytes) throws(CryptoError) {
        sealing = try Self.keyed(key, encrypt: true)
        do { opening = try Self.keyed(key, encrypt: false) } catch {
            EVP_CIPHER_CTX_free(sealing)
            throw error
        }
    }

    /// EVP_CIPHER_CTX_free cleanses the key schedules.
    deinit {
        EVP_CIPHER_CTX_free(sealing)
        EVP_CIPHER_CTX_free(opening)
    }

    private static func keyed(_ key: SecretBytes, encrypt: Bool) throws(CryptoError) -> OpaquePointer {
        guard key.count == keyByteCount else { throw CryptoError.openSSL(operation: "AES-SIV", reason: "the key must be 64 bytes") }
        guard let cipher = Self.cipher else { throw CryptoError.fromOpenSSL("EVP_CIPHER_fetch(AES-256-SIV)") }
        guard let context = EVP_CIPHER_CTX_new() else { throw CryptoError.fromOpenSSL("EVP_CIPHER_CTX_new") }
        let keyed = key.withUnsafeBytes { bytes in
            EVP_CipherInit_ex2(context, cipher, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), nil, encrypt ? 1 : 0, nil)
        }
        guard keyed == 1 else {
            EVP_CIPHER_CTX_free(context)
            throw CryptoError.fromOpenSSL("EVP_CipherInit_ex2(SIV)")
        }
        return context
    }

    public func seal(_ plaintext: [UInt8], associatedData: [[UInt8]]) throws(CryptoError) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Self.tagByteCount + plaintext.count)
        try run(sealing, associatedData: associatedData) { (context) throws(CryptoError) in
            try Self.update(context, input: plaintext, output: &output, at: Self.tagByteCount)
            var length: Int32 = 0
            guard EVP_CipherFinal_ex(context, nil, &length) == 1 else { throw CryptoError.fromOpenSSL("EVP_CipherFinal_ex(SIV)") }
            let tagged = output.withUnsafeMutableBytes { bytes in
                EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, Int32(Self.tagByteCount), bytes.baseAddress)
            }
            guard tagged == 1 else { throw CryptoError.fromOpenSSL("EVP_CTRL_AEAD_GET_TAG") }
        }
        return output
    }

    /// - Throws: ``CryptoError/authenticationFailure`` if `sealed` or the associated data was changed.
    public func open(_ sealed: [UInt8], associatedData: [[UInt8]]) throws(CryptoError) -> [UInt8] {
        guard sealed.count >= Self.tagByteCount else { throw CryptoError.authenticationFailure }
        var output = [UInt8](repeating: 0, count: sealed.count - Self.tagByteCount)
        try run(opening, associatedData: associatedData) { (context) throws(CryptoError) in
            var tag = Array(sealed[..<Self.tagByteCount])
            guard EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, Int32(Self.tagByteCount), &tag) == 1 else {
                throw CryptoError.fromOpenSSL("EVP_CTRL_AEAD_SET_TAG")
            }
            // OpenSSL's SIV checks the tag in the one update that carries the text.
            do { try Self.update(context, input: Array(sealed[Self.tagByteCount...]), output: &output, at: 0) } catch {
                ERR_clear_error()
                throw CryptoError.authenticationFailure
            }
            var length: Int32 = 0
            guard EVP_CipherFinal_ex(context, nil, &length) == 1 else {
                ERR_clear_error()
                throw CryptoError.authenticationFailure
            }
        }
        return output
    }

    /// Runs `body` on a copy of `template` with `associatedData` fed in.
    private func run(_ template: OpaquePointer, associatedData: [[UInt8]],
                     _ body: (OpaquePointer) throws(CryptoError) -> Void) throws(CryptoError) {
        guard let context = EVP_CIPHER_CTX_new() else { throw CryptoError.fromOpenSSL("EVP_CIPHER_CTX_new") }
        defer { EVP_CIPHER_CTX_free(context) }
        guard EVP_CIPHER_CTX_copy(context, template) == 1 else { throw CryptoError.fromOpenSSL("EVP_CIPHER_CTX_copy(SIV)") }
        for component in associatedData {
            var length: Int32 = 0
            // An empty component is still one component of the S2V vector.
            let added = component.withUnsafeBufferPointer { bytes in
                EVP_CipherUpdate(context, nil, &length, bytes.baseAddress ?? UnsafePointer(bitPattern: 1), Int32(bytes.count))
            }
            guard added == 1 else { throw CryptoError.fromOpenSSL("EVP_CipherUpdate(SIV associated data)") }
        }
        try body(context)
    }

    private static func update(_ context: OpaquePointer, input: [UInt8], output: inout [UInt8], at offset: Int) throws(CryptoError) {
        var length: Int32 = 0
        let done = input.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                EVP_CipherUpdate(context, target.baseAddress! + offset, &length, source.baseAddress ?? UnsafePointer(bitPattern: 1), Int32(source.count))
            }
        }
        guard done == 1 else { throw CryptoError.fromOpenSSL("EVP_CipherUpdate(SIV)") }
    }
}
