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
        #expect(geometry.cipherSize(forPlainSize: 0) == 32 + 28)
        #expect(geometry.cipherSize(forPlainSize: 4096) == 32 + 4124 + 28)
        #expect(geometry.cipherSize(forPlainSize: 4097) == 32 + 4124 + 29)
        #expect(geometry.finalChunkIndex(forPlainSize: 4096) == 1)
        #expect(geometry.chunkCount(forPlainLength: 8192, endsFile: true) == 3)
        #expect(geometry.chunkCount(forPlainLength: 8192, endsFile: false) == 2)
        #expect(geometry.cipherOffset(ofChunk: 3) == 32 + 3 * 4124)
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
}
