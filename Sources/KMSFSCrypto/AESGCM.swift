/// AES-256-GCM parameters, and one-shot seal/open for callers off the hot path.
///
/// Hot paths (chunk crypto) keep an ``AESGCMContext`` per thread instead: creating an OpenSSL
/// context and expanding the key for every call halves throughput at 4 KiB.
public enum AESGCM {
    public static let keyByteCount = 32
    public static let nonceByteCount = 12
    public static let tagByteCount = 16

    /// Seals `plaintext`, returning `ciphertext ‖ tag`.
    /// - Throws: ``CryptoError``.
    public static func seal(
        key: SecretBytes, nonce: [UInt8], additionalData: [UInt8] = [], plaintext: [UInt8]
    ) throws -> [UInt8] {
        let context = try AESGCMContext(key: key)
        var output = [UInt8](repeating: 0, count: plaintext.count + tagByteCount)
        try output.withUnsafeMutableBytes { (out) in
            try nonce.withUnsafeBytes { (nonce) in
                try additionalData.withUnsafeBytes { (aad) in
                    try plaintext.withUnsafeBytes { (plain) in
                        try context.seal(
                            nonce: nonce, additionalData: aad, plaintext: plain,
                            ciphertext: UnsafeMutableRawBufferPointer(rebasing: out[0..<plain.count]),
                            tag: UnsafeMutableRawBufferPointer(rebasing: out[plain.count...]))
                    }
                }
            }
        }
        return output
    }

    /// Opens `ciphertext ‖ tag` produced by ``seal(key:nonce:additionalData:plaintext:)``.
    /// - Throws: ``CryptoError/authenticationFailure`` if anything was changed or the key differs.
    public static func open(
        key: SecretBytes, nonce: [UInt8], additionalData: [UInt8] = [], sealed: [UInt8]
    ) throws -> [UInt8] {
        guard sealed.count >= tagByteCount else { throw CryptoError.authenticationFailure }
        let context = try AESGCMContext(key: key)
        let textCount = sealed.count - tagByteCount
        var plaintext = [UInt8](repeating: 0, count: textCount)
        try plaintext.withUnsafeMutableBytes { (plain) in
            try nonce.withUnsafeBytes { (nonce) in
                try additionalData.withUnsafeBytes { (aad) in
                    try sealed.withUnsafeBytes { (sealed) in
                        try context.open(
                            nonce: nonce, additionalData: aad,
                            ciphertext: UnsafeRawBufferPointer(rebasing: sealed[0..<textCount]),
                            tag: UnsafeRawBufferPointer(rebasing: sealed[textCount...]),
                            plaintext: plain)
                    }
                }
            }
        }
        return plaintext
    }
}
