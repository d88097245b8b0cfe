/// The additional authenticated data of one chunk (41 bytes):
///
/// ```
/// header (32 bytes, exactly as stored) ‖ chunk index (u64 big-endian) ‖ final flag (u8: 1 or 0)
/// ```
///
/// The header binds the chunk to its file (file ID), format version and chunk size; the index
/// binds it to its position; the flag says whether it ends the file. The wrapped data key is
/// deliberately absent, so re-wrapping a key never touches chunks.
struct ChunkAAD: ~Copyable {
    static let byteCount = FileHeader.byteCount + 9
    private let buffer: UnsafeMutableRawBufferPointer

    init(header: [UInt8]) {
        precondition(header.count == FileHeader.byteCount)
        buffer = .allocate(byteCount: Self.byteCount, alignment: 8)
        buffer.copyBytes(from: header)
    }

    deinit { buffer.deallocate() }

    /// The additional data for chunk `index`, valid until the next call.
    mutating func bytes(chunk index: Int64, isFinal: Bool) -> UnsafeRawBufferPointer {
        withUnsafeBytes(of: UInt64(index).bigEndian) { index in
            UnsafeMutableRawBufferPointer(rebasing: buffer[FileHeader.byteCount..<FileHeader.byteCount + 8])
                .copyMemory(from: index)
        }
        buffer[Self.byteCount - 1] = isFinal ? 1 : 0
        return UnsafeRawBufferPointer(buffer)
    }
}
