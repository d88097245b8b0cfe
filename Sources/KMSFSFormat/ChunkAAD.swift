/// The additional authenticated data of one chunk (41 bytes):
///
/// ```
/// header (32 bytes, exactly as stored) ‖ chunk index (u64 big-endian) ‖ final flag (u8: 1 or 0)
/// ```
///
/// The header binds the chunk to its file (file ID), format version and chunk size; the index
/// binds it to its position; the flag says whether it ends the file. The wrapped data key is
/// deliberately absent, so re-wrapping a key never touches chunks.
struct ChunkAAD {
    static let byteCount = FileHeader.byteCount + 9
    private let buffer: UnsafeMutableRawBufferPointer

    /// Lends `body` an AAD buffer on the stack, primed with `header`, for a run of chunks.
    static func with<R>(header: [UInt8], _ body: (inout ChunkAAD) throws -> R) rethrows -> R {
        precondition(header.count == FileHeader.byteCount)
        return try withUnsafeTemporaryAllocation(byteCount: byteCount, alignment: 8) { buffer in
            buffer.copyBytes(from: header)
            var aad = ChunkAAD(buffer: buffer)
            return try body(&aad)
        }
    }

    private init(buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }

    /// The additional data for chunk `index`, valid until the next call.
    mutating func bytes(chunk index: Int64, isFinal: Bool) -> UnsafeRawBufferPointer {
        buffer.storeBytes(of: UInt64(index).bigEndian, toByteOffset: FileHeader.byteCount, as: UInt64.self)
        buffer[Self.byteCount - 1] = isFinal ? 1 : 0
        return UnsafeRawBufferPointer(buffer)
    }
}
