internal import COpenSSL

/// Cryptographically secure random bytes from OpenSSL's DRBG (seeded by the kernel).
public enum SecureRandom {
    /// Fills `buffer` with random bytes.
    /// - Throws: ``CryptoError/openSSL(operation:reason:)`` if the generator is not seeded.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        guard var cursor = buffer.baseAddress else { return }
        var remaining = buffer.count
        while remaining > 0 {
            let step = min(remaining, Int(Int32.max))
            guard RAND_bytes(cursor.assumingMemoryBound(to: UInt8.self), Int32(step)) == 1 else {
                throw CryptoError.fromOpenSSL("RAND_bytes")
            }
            cursor += step
            remaining -= step
        }
    }

    /// `count` random bytes in a new array (for public values: IDs, nonces; keys use ``SecretBytes``).
    public static func bytes(count: Int) throws(CryptoError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let filled = bytes.withUnsafeMutableBytes { buffer in Result { () throws(CryptoError) in try fill(buffer) } }
        try filled.get()
        return bytes
    }
}
