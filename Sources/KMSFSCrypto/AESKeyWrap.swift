internal import COpenSSL

/// AES key wrap with padding (RFC 5649, `id-aes256-wrap-pad`) under a 256-bit key: how AWS's
/// RSA_AES_KEY_WRAP import algorithms carry key material too long for RSA-OAEP alone, and what
/// `openssl enc -id-aes256-wrap-pad` and Python's `aes_key_wrap_with_padding` make.
public enum AESKeyWrap {
    public static func wrapPadded(_ material: SecretBytes, key: SecretBytes) throws(CryptoError) -> [UInt8] {
        precondition(key.count == 32, "AES-256 key wrap takes a 32-byte key")
        var output = [UInt8](repeating: 0, count: material.count + 16)
        var length = output.count
        let ok = key.withUnsafeBytes { key in
            material.withUnsafeBytes { plain in
                COpenSSL_aes_key_wrap_pad(1, key.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                          plain.baseAddress?.assumingMemoryBound(to: UInt8.self), plain.count, &output, &length)
            }
        }
        guard ok == 1 else { throw .fromOpenSSL("AES key wrap") }
        return Array(output.prefix(length))
    }

    /// Unwraps; ``CryptoError/authenticationFailure`` when the integrity check fails (another key,
    /// a changed input).
    public static func unwrapPadded(_ wrapped: [UInt8], key: SecretBytes) throws(CryptoError) -> SecretBytes {
        precondition(key.count == 32, "AES-256 key wrap takes a 32-byte key")
        var output = [UInt8](repeating: 0, count: wrapped.count + 16)
        defer { output.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        var length = output.count
        let ok = key.withUnsafeBytes { key in
            wrapped.withUnsafeBufferPointer { input in
                COpenSSL_aes_key_wrap_pad(0, key.baseAddress?.assumingMemoryBound(to: UInt8.self), input.baseAddress, input.count,
                                          &output, &length)
            }
        }
        guard ok == 1 else {
            ERR_clear_error()
            throw .authenticationFailure
        }
        return SecretBytes(copying: output.prefix(length))
    }
}
