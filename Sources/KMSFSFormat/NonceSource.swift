import KMSFSCrypto

/// Where chunk nonces come from. Production uses ``RandomNonceSource``; the known-answer tests of
/// docs/FORMAT.md use fixed nonces, which must never be used for real data.
package protocol NonceSource: Sendable {
    /// Fills `buffer` with one 12-byte nonce for each chunk from `firstChunk` on; `context` is the
    /// cipher context that will seal them (and owns a random reservoir for this thread).
    func fill(_ buffer: UnsafeMutableRawBufferPointer, firstChunk: Int64, context: AESGCMContext) throws
}

/// A fresh random 96-bit nonce for every seal. With one data key per file the birthday bound
/// (about 2^32 seals under one key for a 2^-32 collision chance) is far beyond any file's rewrites.
package struct RandomNonceSource: NonceSource {
    package init() {}

    package func fill(_ buffer: UnsafeMutableRawBufferPointer, firstChunk: Int64, context: AESGCMContext) throws {
        try context.randomNonces(buffer)
    }
}
