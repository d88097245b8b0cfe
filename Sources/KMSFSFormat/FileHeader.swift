/// The 32-byte header at the start of every encrypted backing file.
///
/// ```
/// offset size field
///      0    4 magic "KMSF" (4B 4D 53 46)
///      4    2 format version, big-endian (2: XAES-256-GCM chunks)
///      6    2 flags, big-endian (0; reserved)
///      8    4 plaintext chunk size in bytes, big-endian (a power of two, 4 KiB ... 1 MiB)
///     12   16 file ID (random)
///     28    4 reserved (0)
/// ```
///
/// The header is not sealed on its own: its 32 bytes are part of every chunk's additional data
/// (``ChunkAAD``), so a changed header fails authentication of every chunk, including the empty
/// final chunk of an empty file. It holds no key material: the wrapped data key lives in an
/// extended attribute, so re-wrapping never touches file data. See docs/FORMAT.md.
public struct FileHeader: Equatable, Sendable {
    public static let byteCount = 32
    public static let magic: [UInt8] = Array("KMSF".utf8)
    public static let currentVersion: UInt16 = 2
    /// The chunk size of new volumes: 16 KiB. Chunk crypto runs as fast as at 64 KiB within the
    /// noise of this machine (docs/BENCHMARKS.md), while a small random write re-encrypts 4× less
    /// than with 64 KiB chunks, and the 40-byte overhead stays at 0.24 %.
    public static let defaultChunkSize = 16384
    /// Chunk sizes a header may declare.
    public static let allowedChunkSizes = (12...20).map { 1 << $0 }

    public let version: UInt16
    /// Plaintext bytes per chunk.
    public let chunkSize: Int
    public let fileID: FileID

    public init(chunkSize: Int, fileID: FileID) {
        precondition(Self.allowedChunkSizes.contains(chunkSize), "chunk size must be a power of two from 4 KiB to 1 MiB")
        self.version = Self.currentVersion
        self.chunkSize = chunkSize
        self.fileID = fileID
    }

    /// The header's 32 bytes, as stored and as bound into each chunk's additional data.
    public var encoded: [UInt8] {
        var bytes = Self.magic
        bytes.appendBigEndian(version)
        bytes.appendBigEndian(UInt16(0))
        bytes.appendBigEndian(UInt32(chunkSize))
        bytes += fileID.bytes
        bytes.appendBigEndian(UInt32(0))
        return bytes
    }

    /// Parses a stored header.
    /// - Throws: ``FormatError`` if the bytes are not a header this build can read.
    public init(decoding bytes: some Collection<UInt8>) throws(FormatError) {
        let bytes = Array(bytes)
        guard bytes.count >= Self.byteCount, Array(bytes[0..<4]) == Self.magic else {
            throw .notAnEncryptedFile
        }
        let version = bytes.bigEndian(UInt16.self, at: 4)
        guard version == Self.currentVersion else { throw .unsupportedVersion(version) }
        guard bytes.bigEndian(UInt16.self, at: 6) == 0 else { throw .corruptHeader("flags set") }
        let chunkSize = Int(bytes.bigEndian(UInt32.self, at: 8))
        guard Self.allowedChunkSizes.contains(chunkSize) else {
            throw .corruptHeader("chunk size \(chunkSize) not allowed")
        }
        guard bytes.bigEndian(UInt32.self, at: 28) == 0 else { throw .corruptHeader("reserved bytes set") }
        self.version = version
        self.chunkSize = chunkSize
        self.fileID = FileID(bytes: Array(bytes[12..<28]))
    }
}

extension Array where Element == UInt8 {
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }

    func bigEndian<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        var value: T = 0
        for byte in self[offset..<offset + MemoryLayout<T>.size] { value = value << 8 | T(byte) }
        return value
    }
}
