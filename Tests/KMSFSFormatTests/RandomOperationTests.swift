import Testing
@testable import KMSFSFormat

/// A seeded random sequence of writes, truncations and reads at random offsets, applied to an
/// encrypted file and to a plain reference buffer, compared after every step.
@Suite struct RandomOperationTests {
    @Test(arguments: [
        (seed: UInt64(1), chunkSize: 4096, parallel: true),
        (seed: UInt64(2), chunkSize: 4096, parallel: false),
        (seed: UInt64(3), chunkSize: 16384, parallel: true),
    ])
    func matchesPlainReference(seed: UInt64, chunkSize: Int, parallel: Bool) throws {
        var rng = SeededGenerator(seed: seed)
        let parallelism = parallel ? ChunkParallelism(minimumParallelBytes: 0) : .serial
        let (file, key) = try makeFile(chunkSize: chunkSize, parallelism: parallelism)
        var reference: [UInt8] = []
        let limit = 6 * chunkSize

        for step in 0..<1500 {
            let offset = Int.random(in: 0...limit, using: &rng)
            switch Int.random(in: 0..<10, using: &rng) {
            case 0..<5:
                let count = Int.random(in: 1...(2 * chunkSize + 3), using: &rng)
                let data = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
                try file.write(data, at: Int64(offset))
                if offset + count > reference.count {
                    reference += [UInt8](repeating: 0, count: offset + count - reference.count)
                }
                reference.replaceSubrange(offset..<offset + count, with: data)
            case 5..<7:
                try file.truncate(to: Int64(offset))
                if offset < reference.count { reference.removeLast(reference.count - offset) }
                else { reference += [UInt8](repeating: 0, count: offset - reference.count) }
            default:
                let count = Int.random(in: 0...(3 * chunkSize), using: &rng)
                let expected = offset < reference.count ? Array(reference[offset..<min(reference.count, offset + count)]) : []
                #expect(try file.read(count, at: Int64(offset)) == expected, "step \(step)")
            }
            #expect(try file.plainSize() == Int64(reference.count), "step \(step)")
        }
        #expect(try file.readAll() == reference)
        // The stored bytes alone, under the key, give the same file.
        #expect(try EncryptedFile(opening: MemoryStorage(file.storage.bytes), key: key).readAll() == reference)
    }
}
