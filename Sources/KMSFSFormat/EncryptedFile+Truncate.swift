import KMSFSCrypto

extension EncryptedFile {
    /// Sets the plaintext size, like ftruncate(2).
    ///
    /// Shrinking re-seals the new final chunk from the old bytes it keeps. Growing pads the old
    /// final chunk with zeros and leaves every whole chunk in between as a hole: growing a file
    /// to 10 GiB writes at most two chunks. Growing extends the backing file first; shrinking
    /// seals the new final chunk over the old bytes first and cuts the backing file last: in
    /// between, the size is always one a file can have, and a crash damages only the chunks at
    /// the old and new ends.
    public func truncate(to newSize: Int64) throws {
        precondition(newSize >= 0)
        let size = try plainSize()
        guard newSize != size else { return }
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
            }
            try sealAndWrite(UnsafeRawBufferPointer(rebasing: chunk[0..<keptInFinal]), firstChunk: newFinal, endsFile: true)
            if newSize < size {
                try storage.truncate(to: geometry.cipherSize(forPlainSize: newSize))
            }
        }
    }
}
