import KMSFSCrypto
@testable import KMSFSFormat

/// A backing file in memory, for tests that inspect and mangle the stored bytes directly.
final class MemoryStorage: CipherStorage {
    var bytes: [UInt8]
    init(_ bytes: [UInt8] = []) { self.bytes = bytes }

    func size() throws -> Int64 { Int64(bytes.count) }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        let start = min(Int(offset), bytes.count), count = min(buffer.count, bytes.count - start)
        bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[start..<start + count])) }
        return count
    }

    func write(_ data: UnsafeRawBufferPointer, at offset: Int64) throws {
        let end = Int(offset) + data.count
        if end > bytes.count { bytes += [UInt8](repeating: 0, count: end - bytes.count) }
        bytes.replaceSubrange(Int(offset)..<end, with: data)
    }

    func truncate(to size: Int64) throws {
        if Int(size) < bytes.count { bytes.removeLast(bytes.count - Int(size)) }
        else { bytes += [UInt8](repeating: 0, count: Int(size) - bytes.count) }
    }
}

/// Nonces fixed by chunk index, for the known-answer vectors only:
/// A5 A5 A5 A5 ‖ u64be(index) ‖ 12 × 5A (the first half varies, so each chunk derives its own key).
struct VectorNonces: NonceSource {
    func fill(_ buffer: UnsafeMutableRawBufferPointer, firstChunk: Int64, context: XAESGCMContext) throws {
        let size = ChunkGeometry.nonceByteCount
        for n in 0..<(buffer.count / size) {
            var nonce: [UInt8] = [0xA5, 0xA5, 0xA5, 0xA5]
            withUnsafeBytes(of: UInt64(firstChunk + Int64(n)).bigEndian) { nonce += $0 }
            nonce += [UInt8](repeating: 0x5A, count: 12)
            UnsafeMutableRawBufferPointer(rebasing: buffer[n * size..<(n + 1) * size]).copyBytes(from: nonce)
        }
    }
}

/// A deterministic generator (SplitMix64) so that random sequences replay from their seed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func patternBytes(_ count: Int, seed: UInt8 = 1) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed) &+ $0 >> 8) }
}

extension EncryptedFile {
    /// Reads `count` bytes at `offset` into a new array (shorter at the end of the file).
    func read(_ count: Int, at offset: Int64) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        let got = try buffer.withUnsafeMutableBytes { try read(into: $0, at: offset) }
        return Array(buffer[0..<got])
    }

    func readAll() throws -> [UInt8] { try read(Int(plainSize()) + 1, at: 0) }

    func write(_ bytes: [UInt8], at offset: Int64) throws {
        try bytes.withUnsafeBytes { try write($0, at: offset) }
    }
}

/// A new empty encrypted file in memory under a random key.
func makeFile(chunkSize: Int = 4096, key: SecretBytes? = nil, parallelism: ChunkParallelism = ChunkParallelism())
    throws -> (EncryptedFile<MemoryStorage>, SecretBytes)
{
    let key = try key ?? SecretBytes.random(count: 32)
    let header = FileHeader(chunkSize: chunkSize, fileID: try .random())
    return (try EncryptedFile.create(in: MemoryStorage(), key: key, header: header, parallelism: parallelism), key)
}
