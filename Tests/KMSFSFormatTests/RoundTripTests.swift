import KMSFSCrypto
import Testing
@testable import KMSFSFormat

@Suite struct RoundTripTests {
    static let boundarySizes: [Int] = [0, 1, 4095, 4096, 4097, 3 * 4096 + 1, 10 << 20]

    /// Files of every boundary size, written in one call, read back whole and in odd slices; the
    /// backing file has exactly the size the geometry predicts.
    @Test(arguments: boundarySizes)
    func boundarySize(size: Int) throws {
        let (file, _) = try makeFile(chunkSize: 4096)
        let data = patternBytes(size)
        try file.write(data, at: 0)
        #expect(try file.plainSize() == Int64(size))
        #expect(try file.storage.size() == file.cipher.geometry.cipherSize(forPlainSize: Int64(size)))
        #expect(try file.readAll() == data)
        for (offset, count) in [(0, 1), (1, 4095), (4095, 2), (4096, 4096), (size / 2, 5000), (max(0, size - 3), 10)] {
            let expected = offset < size ? Array(data[offset..<min(size, offset + count)]) : []
            #expect(try file.read(count, at: Int64(offset)) == expected)
        }
    }

    /// The same for the other chunk sizes, with the chunk-size-relative boundaries.
    @Test(arguments: [16384, 65536])
    func boundariesOfOtherChunkSizes(chunkSize: Int) throws {
        for size in [0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 3 * chunkSize + 1] {
            let (file, _) = try makeFile(chunkSize: chunkSize)
            let data = patternBytes(size, seed: 7)
            try file.write(data, at: 0)
            #expect(try file.readAll() == data)
        }
    }

    /// Written chunk by odd chunk, then reopened from the stored bytes alone.
    @Test func reopenFromStoredBytes() throws {
        let (file, key) = try makeFile(chunkSize: 4096)
        let data = patternBytes(50_000)
        var offset = 0
        while offset < data.count {
            let step = min(1234, data.count - offset)
            try file.write(Array(data[offset..<offset + step]), at: Int64(offset))
            offset += step
        }
        let reopened = try EncryptedFile(opening: MemoryStorage(file.storage.bytes), key: key)
        #expect(reopened.header == file.header)
        #expect(try reopened.readAll() == data)
    }

    /// Growing to 10 GiB writes at most two chunks: the rest is a hole that reads as zeros.
    @Test func sparseGrowth() throws {
        let (file, key) = try makeFile(chunkSize: 65536)
        try file.write(Array("head".utf8), at: 0)
        final class CountingStorage: CipherStorage {
            let inner: MemoryStorage
            var written = 0
            var sizeAfterTruncate: Int64 = 0
            init(_ inner: MemoryStorage) { self.inner = inner }
            func size() throws -> Int64 { max(Int64(inner.bytes.count), sizeAfterTruncate) }
            func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
                if offset >= Int64(inner.bytes.count) {
                    buffer.initializeMemory(as: UInt8.self, repeating: 0)
                    return min(buffer.count, Int(try size() - offset))
                }
                return try inner.read(into: buffer, at: offset)
            }
            func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws {
                written += bytes.count
                if offset > Int64(inner.bytes.count) { return }  // beyond what memory holds: counted only
                try inner.write(bytes, at: offset)
            }
            func truncate(to size: Int64) throws { sizeAfterTruncate = size }
        }
        let counting = CountingStorage(file.storage)
        let big = EncryptedFile(storage: counting, cipher: ChunkCipher(key: key, header: file.header, holes: .sparse))
        try big.truncate(to: 10 << 30)
        #expect(try big.plainSize() == 10 << 30)
        #expect(counting.written <= 2 * file.cipher.geometry.cipherChunkSize)
        #expect(try big.read(8, at: 0) == Array("head".utf8) + [0, 0, 0, 0])
        #expect(try big.read(16, at: 1 << 20) == [UInt8](repeating: 0, count: 16))
    }
}
