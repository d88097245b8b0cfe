import KMSFSCrypto

/// What authenticating every chunk of one file found (`kmsfs fsck`).
public struct ChunkCheck: Sendable, Equatable {
    /// The file's plaintext size.
    public var plainSize: Int64
    /// The file's plaintext chunk size (from its header).
    public var chunkSize: Int
    /// Chunks that fail authentication: torn by a crash, or changed outside kmsfs.
    public var failed: [Int64] = []
    /// Full non-final chunks stored as zeros in a sparse file (``HolePolicy/sparse``). They read
    /// as zeros without authentication — a hole, or a chunk someone zeroed, which the format
    /// cannot tell apart (docs/FORMAT.md). In a sealed file such a chunk is in ``failed``.
    public var holes: [Int64] = []

    public init(plainSize: Int64, chunkSize: Int, failed: [Int64] = [], holes: [Int64] = []) {
        self.plainSize = plainSize
        self.chunkSize = chunkSize
        self.failed = failed
        self.holes = holes
    }

    /// The plaintext byte ranges of the failed chunks, adjacent ones merged: reads of them are EIO.
    public var failedRanges: [Range<Int64>] { ranges(of: failed) }

    /// The plaintext byte ranges of the holes, adjacent ones merged.
    public var holeRanges: [Range<Int64>] { ranges(of: holes) }

    /// The file's size when its final chunk holds no bytes (the size is a multiple of the chunk
    /// size, or zero) and fails: no range is lost, but every read that reaches the end of the file
    /// authenticates that chunk and fails. Nil otherwise.
    public var failingEnd: Int64? {
        let geometry = ChunkGeometry(plainChunkSize: chunkSize)
        let final = geometry.finalChunkIndex(forPlainSize: plainSize)
        return failed.last == final && geometry.plainOffset(ofChunk: final) == plainSize ? plainSize : nil
    }

    private func ranges(of chunks: [Int64]) -> [Range<Int64>] {
        let geometry = ChunkGeometry(plainChunkSize: chunkSize)
        var merged: [Range<Int64>] = []
        for chunk in chunks {
            let range = geometry.plainOffset(ofChunk: chunk)..<min(geometry.plainOffset(ofChunk: chunk + 1), plainSize)
            guard !range.isEmpty else { continue }
            if let last = merged.last, last.upperBound == range.lowerBound {
                merged[merged.count - 1] = last.lowerBound..<range.upperBound
            } else {
                merged.append(range)
            }
        }
        return merged
    }
}

extension EncryptedFile {
    /// Authenticates every chunk on its own — a read stops at the first bad chunk, a check must
    /// find them all — and lists the holes. Each chunk's plaintext is wiped once it is checked.
    /// - Throws: ``FormatError/invalidCipherSize(_:)`` when the size fits no layout (then no chunk
    ///   can be located), or the storage's error.
    public func checkChunks() throws -> ChunkCheck {
        let size = try plainSize()
        let final = geometry.finalChunkIndex(forPlainSize: size)
        var check = ChunkCheck(plainSize: size, chunkSize: geometry.plainChunkSize)
        try withUnsafeTemporaryAllocation(byteCount: geometry.cipherChunkSize, alignment: 16) { ciphertext in
            try withUnsafeTemporaryAllocation(byteCount: geometry.plainChunkSize, alignment: 16) { plaintext in
                defer { SecretBytes.wipe(plaintext) }
                for chunk in 0...final {
                    let isFinal = chunk == final
                    let plainLength = isFinal ? Int(size - geometry.plainOffset(ofChunk: chunk)) : geometry.plainChunkSize
                    let stored = UnsafeMutableRawBufferPointer(
                        rebasing: ciphertext[0..<geometry.cipherLength(forPlainLength: plainLength, endsFile: isFinal)])
                    let offset = geometry.cipherOffset(ofChunk: chunk)
                    let count = try storage.read(into: stored, at: offset)
                    guard count == stored.count else { throw FormatError.invalidCipherSize(offset + Int64(count)) }
                    if !isFinal && cipher.holes == .sparse && stored.allSatisfy({ $0 == 0 }) {
                        check.holes.append(chunk)
                        continue
                    }
                    do {
                        try cipher.open(UnsafeRawBufferPointer(stored), firstChunk: chunk, endsFile: isFinal,
                                        into: UnsafeMutableRawBufferPointer(rebasing: plaintext[0..<plainLength]))
                    } catch FormatError.authenticationFailed {
                        check.failed.append(chunk)
                    }
                }
            }
        }
        return check
    }
}
