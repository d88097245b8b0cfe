import KMSFSCrypto

/// Seals and opens runs of consecutive chunks of one file under that file's data key.
///
/// This is the only place chunk bytes are encrypted or authenticated. A run of several chunks is
/// spread over the cores by ``ChunkParallelism``; each stripe borrows one keyed context from the
/// file's ``XAESGCMContextPool`` and draws its nonces in one call.
///
/// Holes: under ``HolePolicy/sparse`` only, a full, non-final chunk whose stored bytes are all
/// zero reads as zeros without authentication (a sparse region left by truncating up).
/// docs/FORMAT.md says what this allows.
public final class ChunkCipher: Sendable {
    public let header: FileHeader
    public let geometry: ChunkGeometry
    public let parallelism: ChunkParallelism
    public let holes: HolePolicy
    private let headerBytes: [UInt8]
    private let contexts: XAESGCMContextPool
    private let nonces: any NonceSource

    /// A cipher for the file described by `header`, under its data key `key` (32 bytes).
    public convenience init(key: SecretBytes, header: FileHeader, holes: HolePolicy = .sealed,
                            parallelism: ChunkParallelism = ChunkParallelism()) {
        self.init(key: key, header: header, holes: holes, parallelism: parallelism, nonces: RandomNonceSource())
    }

    package init(key: SecretBytes, header: FileHeader, holes: HolePolicy = .sealed, parallelism: ChunkParallelism,
                 nonces: any NonceSource) {
        self.header = header
        self.holes = holes
        self.geometry = ChunkGeometry(plainChunkSize: header.chunkSize)
        self.parallelism = parallelism
        self.headerBytes = header.encoded
        self.contexts = XAESGCMContextPool(key: key, maximumIdle: parallelism.cores * parallelism.stripesPerCore)
        self.nonces = nonces
    }

    /// Seals the plaintext of consecutive chunks starting at chunk `firstChunk`.
    ///
    /// - Parameters:
    ///   - plaintext: the chunks' plaintext; a multiple of the chunk size unless `endsFile`.
    ///   - endsFile: the run ends the file: its last chunk is the (short, possibly empty) final one.
    ///   - ciphertext: exactly ``ChunkGeometry/cipherLength(forPlainLength:endsFile:)`` bytes.
    public func seal(
        _ plaintext: UnsafeRawBufferPointer, firstChunk: Int64, endsFile: Bool,
        into ciphertext: UnsafeMutableRawBufferPointer
    ) throws {
        let layout = RunLayout(geometry: geometry, plainLength: plaintext.count, endsFile: endsFile)
        precondition(ciphertext.count == layout.cipherLength, "ciphertext buffer does not fit the run")
        try parallelism.forEachStripe(chunkCount: layout.chunkCount, byteCount: plaintext.count) { stripe in
            try contexts.withContext { context in try ChunkAAD.with(header: headerBytes) { aad in
                try withUnsafeTemporaryAllocation(byteCount: stripe.count * ChunkGeometry.nonceByteCount, alignment: 8) { nonceBuffer in
                    try nonces.fill(nonceBuffer, firstChunk: firstChunk + Int64(stripe.lowerBound), context: context)
                    for (n, chunk) in stripe.enumerated() {
                        let slot = layout.slot(chunk, in: ciphertext)
                        let nonceStart = n * ChunkGeometry.nonceByteCount
                        slot.nonce.copyMemory(from: UnsafeRawBufferPointer(rebasing: nonceBuffer[nonceStart..<nonceStart + ChunkGeometry.nonceByteCount]))
                        try context.seal(
                            nonce: UnsafeRawBufferPointer(slot.nonce),
                            additionalData: aad.bytes(chunk: firstChunk + Int64(chunk), isFinal: layout.isFinal(chunk)),
                            plaintext: layout.plain(chunk, in: plaintext),
                            ciphertext: slot.text, tag: slot.tag)
                    }
                }
            } }
        }
    }

    /// Opens consecutive chunks starting at chunk `firstChunk`.
    ///
    /// - Parameters:
    ///   - ciphertext: the stored chunks, starting at a chunk boundary.
    ///   - endsFile: the run ends the file, so its last chunk must authenticate as the final one.
    ///   - plaintext: exactly the run's plaintext length.
    /// - Throws: ``FormatError/authenticationFailed(chunk:)`` naming the first chunk that fails, or
    ///   ``FormatError/invalidCipherSize(_:)`` if `ciphertext` cannot be such a run. On a throw the
    ///   whole of `plaintext` is zeroed: no byte of a failed run is released.
    public func open(
        _ ciphertext: UnsafeRawBufferPointer, firstChunk: Int64, endsFile: Bool,
        into plaintext: UnsafeMutableRawBufferPointer
    ) throws {
        guard let layout = RunLayout(geometry: geometry, cipherLength: ciphertext.count, endsFile: endsFile) else {
            throw FormatError.invalidCipherSize(Int64(ciphertext.count))
        }
        precondition(plaintext.count == layout.plainLength, "plaintext buffer does not fit the run")
        do {
            try parallelism.forEachStripe(chunkCount: layout.chunkCount, byteCount: ciphertext.count) { stripe in
                try contexts.withContext { context in try ChunkAAD.with(header: headerBytes) { aad in
                    for chunk in stripe {
                        let slot = layout.slot(chunk, in: UnsafeMutableRawBufferPointer(mutating: ciphertext))
                        let output = UnsafeMutableRawBufferPointer(mutating: layout.plain(chunk, in: UnsafeRawBufferPointer(plaintext)))
                        let index = firstChunk + Int64(chunk)
                        do {
                            try context.open(
                                nonce: UnsafeRawBufferPointer(slot.nonce),
                                additionalData: aad.bytes(chunk: index, isFinal: layout.isFinal(chunk)),
                                ciphertext: UnsafeRawBufferPointer(slot.text), tag: UnsafeRawBufferPointer(slot.tag),
                                plaintext: output)
                        } catch CryptoError.authenticationFailure {
                            guard holes == .sparse, !layout.isFinal(chunk), slot.whole.allSatisfy({ $0 == 0 }) else {
                                throw FormatError.authenticationFailed(chunk: UInt64(index))
                            }
                            output.initializeMemory(as: UInt8.self, repeating: 0)  // a hole
                        }
                    }
                } }
            }
        } catch {
            SecretBytes.wipe(plaintext)
            throw error
        }
    }
}

/// Where each chunk of a run sits in the plaintext and ciphertext buffers.
struct RunLayout {
    let geometry: ChunkGeometry
    let chunkCount: Int
    let plainLength: Int
    let cipherLength: Int
    let endsFile: Bool

    init(geometry: ChunkGeometry, plainLength: Int, endsFile: Bool) {
        self.geometry = geometry
        self.plainLength = plainLength
        self.endsFile = endsFile
        self.chunkCount = geometry.chunkCount(forPlainLength: plainLength, endsFile: endsFile)
        self.cipherLength = geometry.cipherLength(forPlainLength: plainLength, endsFile: endsFile)
    }

    /// The layout of a stored run of `cipherLength` bytes, or nil if no run has that length.
    init?(geometry: ChunkGeometry, cipherLength: Int, endsFile: Bool) {
        let full = cipherLength / geometry.cipherChunkSize
        let remainder = cipherLength % geometry.cipherChunkSize
        if endsFile {
            guard remainder >= ChunkGeometry.chunkOverhead else { return nil }
            self.init(geometry: geometry, plainLength: full * geometry.plainChunkSize + remainder - ChunkGeometry.chunkOverhead, endsFile: true)
        } else {
            guard remainder == 0, full > 0 else { return nil }
            self.init(geometry: geometry, plainLength: full * geometry.plainChunkSize, endsFile: false)
        }
    }

    func isFinal(_ chunk: Int) -> Bool { endsFile && chunk == chunkCount - 1 }

    func plain(_ chunk: Int, in buffer: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        let start = chunk * geometry.plainChunkSize
        return UnsafeRawBufferPointer(rebasing: buffer[start..<min(start + geometry.plainChunkSize, plainLength)])
    }

    func slot(_ chunk: Int, in buffer: UnsafeMutableRawBufferPointer) -> ChunkSlot {
        let start = chunk * geometry.cipherChunkSize
        let end = min(start + geometry.cipherChunkSize, cipherLength)
        return ChunkSlot(whole: UnsafeMutableRawBufferPointer(rebasing: buffer[start..<end]))
    }
}

/// One stored chunk: `nonce (24) ‖ ciphertext ‖ tag (16)`.
struct ChunkSlot {
    let whole: UnsafeMutableRawBufferPointer
    var nonce: UnsafeMutableRawBufferPointer { .init(rebasing: whole[0..<ChunkGeometry.nonceByteCount]) }
    var text: UnsafeMutableRawBufferPointer {
        .init(rebasing: whole[ChunkGeometry.nonceByteCount..<whole.count - ChunkGeometry.tagByteCount])
    }
    var tag: UnsafeMutableRawBufferPointer { .init(rebasing: whole[(whole.count - ChunkGeometry.tagByteCount)...]) }
}
