import KMSFSCrypto

/// Where chunk nonces come from. Production uses ``RandomNonceSource``; the known-answer tests of
/// docs/FORMAT.md use fixed nonces, which must never be used for real data.
package protocol NonceSource: Sendable {
    /// Fills `buffer` with one 24-byte nonce for each chunk from `firstChunk` on; `context` is the
    /// cipher context that will seal them (and owns a random reservoir for this thread).
    func fill(_ buffer: UnsafeMutableRawBufferPointer, firstChunk: Int64, context: XAESGCMContext) throws
}

/// A fresh random 192-bit nonce for every seal: XAES-256-GCM derives a key per seal from its
/// first half, so seals under one file key are bounded by 2^64 (docs/FORMAT.md, "Nonces"), not
/// by plain GCM's 2^32.
package struct RandomNonceSource: NonceSource {
    package init() {}

    package func fill(_ buffer: UnsafeMutableRawBufferPointer, firstChunk: Int64, context: XAESGCMContext) throws {
        try context.randomNonces(buffer)
    }
}
