import KMSFSCrypto

/// Offset and size arithmetic between the plaintext view and the ciphertext file.
///
/// A file is a 32-byte header, then chunks. Chunk `i` holds plaintext bytes
/// `[i·P, (i+1)·P)` and is stored at cipher offset `32 + i·C` as `nonce ‖ ciphertext ‖ tag`, where
/// `P` is the plaintext chunk size and `C = P + 40`. Every chunk but the last is full; the last
/// (the final chunk) is always short: it holds `size mod P` bytes, so a file whose size is a
/// multiple of `P` ends with an empty final chunk of 40 bytes. That rule makes the plaintext size a
/// function of the ciphertext size alone (stat needs no key) and makes a file cut at a chunk
/// boundary an invalid size rather than a valid shorter file.
///
/// Plain and cipher quantities are kept apart by name: `plain…` and `cipher…`.
public struct ChunkGeometry: Equatable, Sendable {
    /// Bytes a chunk adds to its plaintext: a 24-byte XAES-256-GCM nonce and a 16-byte tag.
    public static let chunkOverhead = nonceByteCount + tagByteCount
    public static let nonceByteCount = XAESGCMContext.nonceByteCount
    public static let tagByteCount = 16

    /// Plaintext bytes per chunk (`P`).
    public let plainChunkSize: Int
    /// Bytes of a full chunk on disk (`C = P + 40`).
    public var cipherChunkSize: Int { plainChunkSize + Self.chunkOverhead }
    /// Bytes before the first chunk.
    public let headerSize: Int

    public init(plainChunkSize: Int, headerSize: Int = FileHeader.byteCount) {
        precondition(plainChunkSize > 0)
        self.plainChunkSize = plainChunkSize
        self.headerSize = headerSize
    }

    /// The largest plaintext size whose backing file size fits in an `Int64`. Every size and
    /// offset a caller brings is checked against it (``checkedEnd(offset:count:)``) before any
    /// arithmetic here, so no input can overflow: larger is ``FormatError/fileTooLarge``
    /// (EFBIG). The backing filesystem's own limit is usually far lower and answers EFBIG itself.
    public var maximumPlainSize: Int64 {
        ((Int64.max - Int64(headerSize)) / Int64(cipherChunkSize) - 1) * Int64(plainChunkSize)
    }

    /// `offset + count`, if both are non-negative and the end is a size a file may have.
    /// - Throws: ``FormatError/fileTooLarge`` otherwise (a negative value included).
    public func checkedEnd(offset: Int64, count: Int64) throws(FormatError) -> Int64 {
        guard offset >= 0, count >= 0 else { throw .fileTooLarge }
        let (end, overflow) = offset.addingReportingOverflow(count)
        guard !overflow, end <= maximumPlainSize else { throw .fileTooLarge }
        return end
    }

    /// The chunk that holds plaintext byte `plainOffset`.
    public func chunkIndex(forPlainOffset plainOffset: Int64) -> Int64 {
        plainOffset / Int64(plainChunkSize)
    }

    /// The plaintext offset where chunk `index` begins.
    public func plainOffset(ofChunk index: Int64) -> Int64 {
        index * Int64(plainChunkSize)
    }

    /// The ciphertext offset where chunk `index` begins.
    public func cipherOffset(ofChunk index: Int64) -> Int64 {
        Int64(headerSize) + index * Int64(cipherChunkSize)
    }

    /// The index of the final (short, possibly empty) chunk of a file of `plainSize` bytes.
    public func finalChunkIndex(forPlainSize plainSize: Int64) -> Int64 {
        plainSize / Int64(plainChunkSize)
    }

    /// The size of the backing file that holds `plainSize` plaintext bytes (at most
    /// ``maximumPlainSize``).
    public func cipherSize(forPlainSize plainSize: Int64) -> Int64 {
        precondition(plainSize >= 0 && plainSize <= maximumPlainSize, "plaintext size out of range")
        return Int64(headerSize) + Int64(cipherLength(forPlainLength: Int(clamping: plainSize), endsFile: true))
    }

    /// The plaintext size of a backing file of `cipherSize` bytes.
    /// - Throws: ``FormatError/invalidCipherSize(_:)`` if no valid file has that size: shorter than
    ///   header plus final chunk, a remainder that cannot be a final chunk (a cut or an extension),
    ///   or more than ``maximumPlainSize`` allows.
    public func plainSize(forCipherSize cipherSize: Int64) throws(FormatError) -> Int64 {
        let body = cipherSize - Int64(headerSize)
        guard body >= Int64(Self.chunkOverhead) else { throw .invalidCipherSize(cipherSize) }
        let fullChunks = body / Int64(cipherChunkSize)
        let remainder = body % Int64(cipherChunkSize)
        guard remainder >= Int64(Self.chunkOverhead) else { throw .invalidCipherSize(cipherSize) }
        let plainSize = fullChunks * Int64(plainChunkSize) + remainder - Int64(Self.chunkOverhead)
        // A (sparse) backing file near 2^63 bytes would map past the largest size, where the
        // arithmetic of the next write could overflow: no valid file is that large.
        guard plainSize <= maximumPlainSize else { throw .invalidCipherSize(cipherSize) }
        return plainSize
    }

    /// The number of chunks that hold `plainLength` bytes starting at a chunk boundary; when the
    /// range ends the file, a final chunk follows the full ones even if it is empty.
    public func chunkCount(forPlainLength plainLength: Int, endsFile: Bool) -> Int {
        endsFile ? plainLength / plainChunkSize + 1 : (plainLength + plainChunkSize - 1) / plainChunkSize
    }

    /// Ciphertext bytes of the chunks that hold `plainLength` bytes from a chunk boundary.
    /// Without `endsFile`, `plainLength` must be a multiple of the chunk size.
    public func cipherLength(forPlainLength plainLength: Int, endsFile: Bool) -> Int {
        precondition(endsFile || plainLength % plainChunkSize == 0, "only the final chunk may be short")
        return plainLength + chunkCount(forPlainLength: plainLength, endsFile: endsFile) * Self.chunkOverhead
    }
}
