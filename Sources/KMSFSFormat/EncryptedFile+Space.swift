/// Backing space: reserved before an operation changes any byte (so ENOSPC leaves the file as
/// it was, and a write into a hole cannot be cut short midway, tearing a chunk), and
/// fallocate(2) in plaintext terms.
extension EncryptedFile {
    /// fallocate(2) modes 0 and FALLOC_FL_KEEP_SIZE: reserves the ciphertext of every chunk
    /// `[offset, offset + length)` touches; mode 0 (`keepSize` false) also grows the file to
    /// cover the range (with zeros, sealed or a hole as the file's ``HolePolicy`` says).
    /// - Throws: ``FormatError/fileTooLarge`` for a range past the largest file, storage errors
    ///   (ENOSPC) before anything changed.
    public func allocate(offset: Int64, length: Int64, keepSize: Bool) throws {
        let end = try geometry.checkedEnd(offset: offset, count: length)
        let size = try plainSize()
        let reach = keepSize ? end : max(size, end)
        try reserve(from: geometry.cipherOffset(ofChunk: geometry.chunkIndex(forPlainOffset: offset)),
                    to: geometry.cipherSize(forPlainSize: reach))
        if !keepSize && end > size { try truncate(to: end) }
    }

    /// The space a write of `[offset, end)` into a file of `size` bytes seals into: the chunks it
    /// writes and, past the end, what growing to `offset` writes (for sparse files only the old
    /// final chunk's growth, not the hole).
    func reserveForWrite(offset: Int64, end: Int64, size: Int64) throws {
        let reach = geometry.cipherSize(forPlainSize: max(size, end))
        let written = min(reach, geometry.cipherOffset(ofChunk: geometry.chunkIndex(forPlainOffset: end) + 1))
        if offset > size && cipher.holes == .sparse {
            try reserveForTruncate(from: size, to: offset)
            try reserve(from: geometry.cipherOffset(ofChunk: geometry.chunkIndex(forPlainOffset: offset)), to: written)
        } else {
            try reserve(from: geometry.cipherOffset(ofChunk: geometry.chunkIndex(forPlainOffset: min(offset, size))), to: written)
        }
    }

    /// The space a truncation from `size` to `newSize` seals into: the new final chunk, and when
    /// growing, the old final chunk and (sealed files) every chunk between.
    func reserveForTruncate(from size: Int64, to newSize: Int64) throws {
        let newEnd = geometry.cipherSize(forPlainSize: newSize)
        let newFinalStart = geometry.cipherOffset(ofChunk: geometry.finalChunkIndex(forPlainSize: newSize))
        guard newSize > size else { return try reserve(from: newFinalStart, to: newEnd) }
        let oldFinal = geometry.finalChunkIndex(forPlainSize: size)
        if cipher.holes == .sealed {
            try reserve(from: geometry.cipherOffset(ofChunk: oldFinal), to: newEnd)
        } else {
            try reserve(from: geometry.cipherOffset(ofChunk: oldFinal), to: min(newEnd, geometry.cipherOffset(ofChunk: oldFinal + 1)))
            try reserve(from: newFinalStart, to: newEnd)
        }
    }

    private func reserve(from start: Int64, to end: Int64) throws {
        if end > start { try storage.reserve(at: start, count: end - start) }
    }
}
