internal import COpenSSL

/// HKDF with SHA-256 (RFC 5869), for deriving subkeys from one secret.
public enum HKDF {
    /// Derives `outputByteCount` bytes from `inputKeyMaterial`, `salt` and `info`.
    /// - Throws: ``CryptoError/openSSL(operation:reason:)`` if OpenSSL refuses the parameters
    ///   (for example more than 255 × 32 output bytes).
    public static func sha256(
        inputKeyMaterial: SecretBytes,
        salt: [UInt8] = [],
        info: [UInt8] = [],
        outputByteCount: Int
    ) throws(CryptoError) -> SecretBytes {
        guard let context = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nil) else {
            throw CryptoError.fromOpenSSL("EVP_PKEY_CTX_new_id(HKDF)")
        }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_derive_init(context) == 1,
              EVP_PKEY_CTX_set_hkdf_md(context, EVP_sha256()) == 1,
              salt.withUnsafeBufferPointer({ EVP_PKEY_CTX_set1_hkdf_salt(context, $0.baseAddress, Int32($0.count)) }) == 1,
              inputKeyMaterial.withUnsafeBytes({
                  EVP_PKEY_CTX_set1_hkdf_key(context, $0.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32($0.count))
              }) == 1,
              info.withUnsafeBufferPointer({ EVP_PKEY_CTX_add1_hkdf_info(context, $0.baseAddress, Int32($0.count)) }) == 1
        else {
            throw CryptoError.fromOpenSSL("HKDF setup")
        }
        return try SecretBytes(count: outputByteCount) { (output) throws(CryptoError) in
            var length = output.count
            guard EVP_PKEY_derive(context, output.baseAddress?.assumingMemoryBound(to: UInt8.self), &length) == 1,
                  length == output.count
            else {
                throw CryptoError.fromOpenSSL("EVP_PKEY_derive(HKDF)")
            }
        }
    }
}
