import KMSFSCrypto

extension EncryptedFile {
    /// Sets the plaintext size, like ftruncate(2).
    ///
    /// Shrinking re-seals the new final chunk from the old bytes it keeps. Growing pads the old
    /// final chunk with zeros and fills every whole chunk in between with sealed zeros, or
    /// (``HolePolicy/sparse``) leaves it a hole: growing a file to 10 GiB then writes at most two
    /// chunks. The space growth needs is reserved first. Growing extends the backing file first; shrinking
    /// seals the new final chunk over the old bytes first and cuts the backing file last: in
    /// between, the size is always one a file can have, and a crash damages only the chunks at
    /// the old and new ends.
    /// - Throws: ``FormatError/fileTooLarge`` for a negative size or one past
    ///   ``ChunkGeometry/maximumPlainSize``.
    public func truncate(to newSize: Int64) throws {
        _ = try geometry.checkedEnd(offset: newSize, count: 0)
        let size = try plainSize()
        guard newSize != size else { return }
        try reserveForTruncate(from: size, to: newSize)
        let newFinal = geometry.finalChunkIndex(forPlainSize: newSize)
        let newFinalStart = geometry.plainOffset(ofChunk: newFinal)
        let keptInFinal = Int(newSize - newFinalStart)

        try withUnsafeTemporaryAllocation(byteCount: geometry.plainChunkSize, alignment: 16) { chunk in
            defer { SecretBytes.wipe(chunk) }
            chunk.initializeMemory(as: UInt8.self, repeating: 0)
            let oldFinal = geometry.finalChunkIndex(forPlainSize: size)
            let growsPastFinal = newSize > size && newFinal != oldFinal
            let oldFinalStart = geometry.plainOffset(ofChunk: oldFinal)
            let oldKept = Int(size - oldFinalStart)
            if growsPastFinal {
                // The old final chunk will become a full chunk, zero-padded.
                if oldKept > 0 {
                    try readRun(firstChunk: oldFinal, plainLength: oldKept, fileSize: size,
                                into: UnsafeMutableRawBufferPointer(rebasing: chunk[0..<oldKept]))
                }
            } else {
                // The new final chunk keeps old bytes: as many as both sizes have, zeros after.
                let old = Int(min(size, newSize) - newFinalStart)
                if old > 0 {
                    // Chunks are opened whole; the bytes past the new end are dropped again.
                    let stored = Int(min(Int64(geometry.plainChunkSize), size - newFinalStart))
                    try readRun(firstChunk: newFinal, plainLength: stored, fileSize: size,
                                into: UnsafeMutableRawBufferPointer(rebasing: chunk[0..<stored]))
                    UnsafeMutableRawBufferPointer(rebasing: chunk[old..<stored]).initializeMemory(as: UInt8.self, repeating: 0)
                }
            }
            if newSize > size {
                try storage.truncate(to: geometry.cipherSize(forPlainSize: newSize))
            }
            if growsPastFinal {
                try sealAndWrite(UnsafeRawBufferPointer(chunk), firstChunk: oldFinal, endsFile: false)
                UnsafeMutableRawBufferPointer(rebasing: chunk[0..<oldKept]).initializeMemory(as: UInt8.self, repeating: 0)
                if cipher.holes == .sealed { try sealZeros(fromChunk: oldFinal + 1, upTo: newFinal) }
            }
            try sealAndWrite(UnsafeRawBufferPointer(rebasing: chunk[0..<keptInFinal]), firstChunk: newFinal, endsFile: true)
            if newSize < size {
                try storage.truncate(to: geometry.cipherSize(forPlainSize: newSize))
            }
        }
    }
}

extension EncryptedFile {
    /// Seals full chunks of zeros `[first, end)`, a megabyte-sized run at a time.
    func sealZeros(fromChunk first: Int64, upTo end: Int64) throws {
        guard end > first else { return }
        let perRun = max(1, (1 << 20) / geometry.plainChunkSize)
        try withUnsafeTemporaryAllocation(byteCount: perRun * geometry.plainChunkSize, alignment: 16) { zeros in
            zeros.initializeMemory(as: UInt8.self, repeating: 0)
            var chunk = first
            while chunk < end {
                let count = Int(min(Int64(perRun), end - chunk))
                try sealAndWrite(UnsafeRawBufferPointer(rebasing: zeros[0..<count * geometry.plainChunkSize]), firstChunk: chunk, endsFile: false)
                chunk += Int64(count)
            }
        }
    }
}
