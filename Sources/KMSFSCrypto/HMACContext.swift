internal import COpenSSL

/// HMAC-SHA-256 under one key, keyed once and reused for many messages.
///
/// The one-shot ``HMAC/sha256(key:message:)`` fetches the algorithm by name and sets up a context
/// on every call; a caller that MACs a stream of records (the audit chain) keeps one of these.
/// Not thread-safe: one thread at a time.
public final class HMACContext {
    private let context: OpaquePointer

    /// - Throws: ``CryptoError`` if OpenSSL cannot set up HMAC-SHA-256.
    public init(key: SecretBytes) throws(CryptoError) {
        guard let mac = EVP_MAC_fetch(nil, "HMAC", nil) else { throw CryptoError.fromOpenSSL("EVP_MAC_fetch(HMAC)") }
        defer { EVP_MAC_free(mac) }
        guard let context = EVP_MAC_CTX_new(mac) else { throw CryptoError.fromOpenSSL("EVP_MAC_CTX_new") }
        self.context = context
        let ok = "SHA256".withCString { digest in
            let parameters = [
                OSSL_PARAM_construct_utf8_string("digest", UnsafeMutablePointer(mutating: digest), 0),
                OSSL_PARAM_construct_end(),
            ]
            return key.withUnsafeBytes { key in
                EVP_MAC_init(context, key.baseAddress?.assumingMemoryBound(to: UInt8.self), key.count, parameters)
            }
        }
        guard ok == 1 else { throw CryptoError.fromOpenSSL("EVP_MAC_init") }
    }

    deinit { EVP_MAC_CTX_free(context) }

    /// The MAC of the concatenation of `parts` (no copy into one buffer needed).
    public func mac(_ parts: [UInt8]...) -> [UInt8] {
        // Re-initializing with no key keeps the key set in init.
        precondition(EVP_MAC_init(context, nil, 0, nil) == 1, "EVP_MAC_init failed")
        for part in parts {
            part.withUnsafeBufferPointer { precondition(EVP_MAC_update(context, $0.baseAddress, $0.count) == 1) }
        }
        var out = [UInt8](repeating: 0, count: SHA256.byteCount)
        var length = 0
        precondition(EVP_MAC_final(context, &out, &length, out.count) == 1 && length == SHA256.byteCount, "EVP_MAC_final failed")
        return out
    }
}
