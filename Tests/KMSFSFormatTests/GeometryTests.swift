import Testing
@testable import KMSFSFormat

@Suite struct GeometryTests {
    /// Every plaintext size from 0 to 10 000 maps to a ciphertext size and back; the mapping is
    /// strictly increasing; every ciphertext size in between that no plaintext size produces is
    /// rejected (so a cut or an extension never passes for a valid file).
    @Test(arguments: [4096, 16384])
    func sizesMapBothWaysAndNothingElseIsValid(chunkSize: Int) throws {
        let geometry = ChunkGeometry(plainChunkSize: chunkSize)
        var valid = Set<Int64>()
        var previous: Int64 = -1
        for plain in Int64(0)...10_000 {
            let cipher = geometry.cipherSize(forPlainSize: plain)
            #expect(cipher > previous)
            previous = cipher
            #expect(try geometry.plainSize(forCipherSize: cipher) == plain)
            valid.insert(cipher)
        }
        for cipher in Int64(0)...previous where !valid.contains(cipher) {
            #expect(throws: FormatError.invalidCipherSize(cipher)) { try geometry.plainSize(forCipherSize: cipher) }
        }
    }

    @Test func layoutOfAFileAtAChunkBoundaryEndsWithAnEmptyFinalChunk() {
        let geometry = ChunkGeometry(plainChunkSize: 4096)
        #expect(geometry.cipherSize(forPlainSize: 0) == 32 + 40)
        #expect(geometry.cipherSize(forPlainSize: 4096) == 32 + 4136 + 40)
        #expect(geometry.cipherSize(forPlainSize: 4097) == 32 + 4136 + 41)
        #expect(geometry.finalChunkIndex(forPlainSize: 4096) == 1)
        #expect(geometry.chunkCount(forPlainLength: 8192, endsFile: true) == 3)
        #expect(geometry.chunkCount(forPlainLength: 8192, endsFile: false) == 2)
        #expect(geometry.cipherOffset(ofChunk: 3) == 32 + 3 * 4136)
        #expect(geometry.chunkIndex(forPlainOffset: 4095) == 0)
        #expect(geometry.chunkIndex(forPlainOffset: 4096) == 1)
    }

    /// Sparse sizes far beyond memory still map exactly (10 GiB, and 1 TiB).
    @Test func largeSizes() throws {
        let geometry = ChunkGeometry(plainChunkSize: 65536)
        for plain: Int64 in [10 << 30, 1 << 40, (1 << 40) + 12345] {
            #expect(try geometry.plainSize(forCipherSize: geometry.cipherSize(forPlainSize: plain)) == plain)
        }
    }

    /// Sizes and offsets from outside are checked before any arithmetic: the largest size maps to
    /// a backing size that fits, one byte more (or an overflowing or negative end) is
    /// FormatError.fileTooLarge, and a file refuses to grow past it without changing.
    @Test(arguments: [4096, 16384, 1 << 20])
    func hugeSizesAreErrorsNotTraps(chunkSize: Int) throws {
        let geometry = ChunkGeometry(plainChunkSize: chunkSize)
        let largest = geometry.maximumPlainSize
        #expect(geometry.cipherSize(forPlainSize: largest) > largest)
        #expect(try geometry.plainSize(forCipherSize: geometry.cipherSize(forPlainSize: largest)) == largest)
        #expect(try geometry.checkedEnd(offset: largest - 10, count: 10) == largest)
        for (offset, count) in [(largest, Int64(1)), (Int64.max, Int64(1)), (Int64.max - 5, Int64(1 << 20)), (-1, Int64(1)), (0, Int64(-1))] {
            #expect(throws: FormatError.fileTooLarge) { try geometry.checkedEnd(offset: offset, count: count) }
        }
        // A backing file that large (sparse, planted) has no valid plaintext size at all.
        #expect(throws: FormatError.invalidCipherSize(Int64.max)) { try geometry.plainSize(forCipherSize: Int64.max) }
        // One whose final chunk is well formed (remainder C - 1) but which holds more than the
        // largest size: refused by the bound itself.
        let chunks = (Int64.max - 32) / Int64(geometry.cipherChunkSize)
        let pastLargest = 32 + (chunks - 1) * Int64(geometry.cipherChunkSize) + Int64(geometry.cipherChunkSize - 1)
        #expect(throws: FormatError.invalidCipherSize(pastLargest)) { try geometry.plainSize(forCipherSize: pastLargest) }
        let (file, _) = try makeFile(chunkSize: chunkSize)
        try file.write(Array("kept".utf8), at: 0)
        #expect(throws: FormatError.fileTooLarge) { try file.truncate(to: 9_223_372_036_854_775_000) }
        #expect(throws: FormatError.fileTooLarge) { try file.write(Array("x".utf8), at: Int64.max - 1) }
        #expect(throws: FormatError.fileTooLarge) { try file.allocate(offset: Int64.max - 2, length: 4, keepSize: false) }
        #expect(try file.plainSize() == 4)
    }
}
