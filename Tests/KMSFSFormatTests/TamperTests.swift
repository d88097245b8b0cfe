import KMSFSCrypto
import Testing
@testable import KMSFSFormat

/// Changes to the stored bytes are detected: a read returns an error, never different bytes.
@Suite struct TamperTests {
    /// Whether reading the whole file from `bytes` reports an integrity error (a Bool, so that
    /// a failure prints no file contents).
    func rejects(_ bytes: [UInt8], key: SecretBytes) -> Bool { readAll(bytes, key: key) == nil }

    /// Reads the whole file from `bytes`; nil if any step reports an integrity error.
    func readAll(_ bytes: [UInt8], key: SecretBytes, holes: HolePolicy = .sealed) -> [UInt8]? {
        guard let file = try? EncryptedFile(opening: MemoryStorage(bytes), key: key, holes: holes) else { return nil }
        return try? file.readAll()
    }

    /// Every single-bit flip anywhere in the file (header, nonce, ciphertext, tag) of a small
    /// one-chunk file and of a two-chunk file.
    @Test(arguments: [100, 4096 + 100])
    func everyBitFlipIsDetected(size: Int) throws {
        let (file, key) = try makeFile(chunkSize: 4096)
        try file.write(patternBytes(size), at: 0)
        let stored = file.storage.bytes
        #expect(readAll(stored, key: key) == patternBytes(size))
        var undetected = 0
        for bit in 0..<(stored.count * 8) {
            var changed = stored
            changed[bit / 8] ^= 1 << (bit % 8)
            if readAll(changed, key: key) != nil { undetected += 1 }
        }
        #expect(undetected == 0)
    }

    /// A failed read hands back zeros in the caller's buffer, not partly decrypted data.
    @Test func failedReadReleasesNothing() throws {
        let (file, key) = try makeFile(chunkSize: 4096)
        try file.write(patternBytes(3 * 4096), at: 0)
        var stored = file.storage.bytes
        stored[32 + 2 * 4136 + 100] ^= 1  // inside chunk 2
        let tampered = try EncryptedFile(opening: MemoryStorage(stored), key: key)
        var buffer = [UInt8](repeating: 0xEE, count: 3 * 4096)
        #expect(throws: FormatError.authenticationFailed(chunk: 2)) {
            _ = try buffer.withUnsafeMutableBytes { try tampered.read(into: $0, at: 0) }
        }
        #expect(buffer.allSatisfy { $0 == 0 })
        // Chunks before the damage still read.
        #expect(try tampered.read(4096, at: 4096) == Array(patternBytes(3 * 4096)[4096..<8192]))
    }

    @Test func chunkSwapWithinAFile() throws {
        let (file, key) = try makeFile(chunkSize: 4096)
        try file.write(patternBytes(3 * 4096 + 10), at: 0)
        var stored = file.storage.bytes
        let c = 4136
        let chunk0 = Array(stored[32..<32 + c]), chunk1 = Array(stored[32 + c..<32 + 2 * c])
        stored.replaceSubrange(32..<32 + c, with: chunk1)
        stored.replaceSubrange(32 + c..<32 + 2 * c, with: chunk0)
        let swapped = try EncryptedFile(opening: MemoryStorage(stored), key: key)
        #expect(throws: FormatError.authenticationFailed(chunk: 0)) { try swapped.read(10, at: 0) }
        #expect(throws: FormatError.authenticationFailed(chunk: 1)) { try swapped.read(10, at: 4096) }
        #expect(rejects(stored, key: key))
    }

    /// A chunk from another file under the same key (another file ID) does not authenticate.
    @Test func spliceFromAnotherFile() throws {
        let key = try SecretBytes.random(count: 32)
        let (a, _) = try makeFile(chunkSize: 4096, key: key)
        let (b, _) = try makeFile(chunkSize: 4096, key: key)
        try a.write(patternBytes(2 * 4096 + 5, seed: 1), at: 0)
        try b.write(patternBytes(2 * 4096 + 5, seed: 2), at: 0)
        var stored = a.storage.bytes
        stored.replaceSubrange(32 + 4136..<32 + 2 * 4136, with: b.storage.bytes[32 + 4136..<32 + 2 * 4136])
        let spliced = try EncryptedFile(opening: MemoryStorage(stored), key: key)
        #expect(try spliced.read(10, at: 0) == Array(patternBytes(10, seed: 1)))
        #expect(throws: FormatError.authenticationFailed(chunk: 1)) { try spliced.read(10, at: 4096) }
        // Even the header of the other file (its file ID) does not make its chunk fit.
        var withHeader = stored
        withHeader.replaceSubrange(0..<32, with: b.storage.bytes[0..<32])
        #expect(rejects(withHeader, key: key))
    }

    /// Cutting the backing file at any chunk boundary (including dropping only the empty final
    /// chunk of a chunk-aligned file) is detected, as is any cut inside a chunk.
    @Test(arguments: [5 * 4096 + 700, 5 * 4096])
    func truncationAtEveryChunkBoundary(size: Int) throws {
        let (file, key) = try makeFile(chunkSize: 4096)
        try file.write(patternBytes(size), at: 0)
        let stored = file.storage.bytes
        let geometry = file.cipher.geometry
        for chunk in Int64(0)...geometry.finalChunkIndex(forPlainSize: Int64(size)) {
            let cut = Int(geometry.cipherOffset(ofChunk: chunk))
            #expect(rejects(Array(stored[0..<cut]), key: key), "cut at chunk \(chunk)")
            if cut + 40 < stored.count {
                #expect(rejects(Array(stored[0..<cut + 40]), key: key), "cut after chunk \(chunk)'s overhead")
            }
        }
        #expect(rejects(Array(stored.dropLast()), key: key))
        #expect(rejects(stored + [0], key: key))
        #expect(rejects([], key: key))
    }

    /// After a file shrinks, putting back a chunk it used to have is detected.
    @Test(arguments: [4096 + 2048, 2 * 4096])
    func staleChunkAppended(newSize: Int) throws {
        let (file, key) = try makeFile(chunkSize: 4096)
        try file.write(patternBytes(4 * 4096 + 10), at: 0)
        let old = file.storage.bytes
        try file.truncate(to: Int64(newSize))
        let geometry = file.cipher.geometry
        let staleIndex = geometry.finalChunkIndex(forPlainSize: Int64(newSize)) + 1
        let start = Int(geometry.cipherOffset(ofChunk: staleIndex))
        let stale = Array(old[start..<start + geometry.cipherChunkSize])
        #expect(readAll(file.storage.bytes, key: key) == Array(patternBytes(newSize)))
        #expect(rejects(file.storage.bytes + stale, key: key))
        // Replacing the new final chunk by the old chunk at its index does not pass either.
        let finalStart = Int(geometry.cipherOffset(ofChunk: staleIndex - 1))
        let oldAtFinal = Array(old[finalStart..<finalStart + geometry.cipherChunkSize])
        #expect(rejects(Array(file.storage.bytes[0..<finalStart]) + oldAtFinal, key: key))
    }

    @Test func wrongKey() throws {
        let (file, _) = try makeFile(chunkSize: 4096)
        try file.write(patternBytes(10), at: 0)
        #expect(rejects(file.storage.bytes, key: try .random(count: 32)))
        let (empty, _) = try makeFile(chunkSize: 4096)
        #expect(rejects(empty.storage.bytes, key: try .random(count: 32)))
    }

    /// A whole non-final chunk replaced by zeros fails in a sealed file (the default); in a
    /// sparse file it reads as a hole (zeros): the documented limit of ``HolePolicy/sparse``. A
    /// zeroed final chunk is detected either way.
    @Test func zeroedChunksFailUnlessSparseAndNeverTheFinalOne() throws {
        let (file, key) = try makeFile(chunkSize: 4096)
        try file.write(patternBytes(2 * 4096 + 10), at: 0)
        var stored = file.storage.bytes
        stored.replaceSubrange(32..<32 + 4136, with: [UInt8](repeating: 0, count: 4136))
        #expect(rejects(stored, key: key))
        #expect(readAll(stored, key: key, holes: .sparse) == [UInt8](repeating: 0, count: 4096) + Array(patternBytes(2 * 4096 + 10)[4096...]))
        var finalZeroed = file.storage.bytes
        finalZeroed.replaceSubrange((32 + 2 * 4136)..., with: [UInt8](repeating: 0, count: 50))
        #expect(rejects(finalZeroed, key: key))
    }
}
