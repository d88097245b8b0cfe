import KMSFSCrypto
import Testing
@testable import KMSFSFormat

/// What a crash in the middle of a write or truncation can leave behind.
///
/// Each operation runs against storage that stops after a budget of mutated bytes, the way a
/// killed process stops between the pages of a pwrite (ftruncate is all or nothing). For cut
/// points across the whole operation, the bytes left behind must make a valid file: a size some
/// file can have (never one that refuses the whole file), the old or the new size, and every
/// chunk the operation does not overlap still authenticating with its old bytes.
@Suite struct CrashCutTests {
    static let chunkSize = 4096

    /// Storage that accepts `budget` more bytes of writes (a truncation costs one), then fails
    /// every mutation, keeping what it had: the process died there.
    final class CuttingStorage: CipherStorage {
        struct Cut: Error {}
        let inner: MemoryStorage
        var budget: Int
        var spent = 0
        init(_ bytes: [UInt8], budget: Int) { inner = MemoryStorage(bytes); self.budget = budget }

        func size() throws -> Int64 { try inner.size() }
        func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
            try inner.read(into: buffer, at: offset)
        }
        func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws {
            let allowed = min(bytes.count, budget - spent)
            spent += allowed
            if allowed > 0 { try inner.write(UnsafeRawBufferPointer(rebasing: bytes[0..<allowed]), at: offset) }
            if allowed < bytes.count { throw Cut() }
        }
        func truncate(to size: Int64) throws {
            guard spent < budget else { throw Cut() }
            spent += 1
            try inner.truncate(to: size)
        }
    }

    enum Operation: CustomStringConvertible {
        case write(offset: Int, count: Int)
        case truncate(size: Int)
        var description: String {
            switch self {
            case let .write(offset, count): "write(\(offset), \(count))"
            case let .truncate(size): "truncate(\(size))"
            }
        }

        /// The sizes the file may have when the operation is cut: before, after, and for a write
        /// past the end, the size of the hole that comes first.
        func sizesOnTheWay(from size: Int, to newSize: Int) -> Set<Int> {
            if case let .write(offset, _) = self, offset > size { return [size, offset, newSize] }
            return [size, newSize]
        }

        /// The chunks whose bytes the operation may change on a file of `size` bytes: those its
        /// range overlaps, and the final chunks before and after it.
        func overlapped(fileSize size: Int) -> ClosedRange<Int> {
            let (low, high): (Int, Int)
            switch self {
            case let .write(offset, count): (low, high) = (min(offset, size), max(size, offset + count))
            case let .truncate(newSize): (low, high) = (min(size, newSize), max(size, newSize))
            }
            let touchesEnd = high >= size
            return low / chunkSize...(touchesEnd ? high / chunkSize : (high - 1) / chunkSize)
        }
    }

    @Test(arguments: [UInt64(1), 2, 3, 4])
    func anOperationCutAnywhereLeavesAValidFile(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        let key = try SecretBytes.random(count: 32)
        let header = FileHeader(chunkSize: Self.chunkSize, fileID: try .random())
        let limit = 5 * Self.chunkSize
        var checkedCuts = 0
        for step in 0..<60 {
            // A random starting file.
            let plain = (0..<Int.random(in: 0...limit, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let start = MemoryStorage()
            let file = try EncryptedFile.create(in: start, key: key, header: header)
            try file.write(plain, at: 0)
            let operation: Operation = Bool.random(using: &rng)
                ? .write(offset: Int.random(in: 0...limit, using: &rng), count: Int.random(in: 1...(2 * Self.chunkSize + 7), using: &rng))
                : .truncate(size: Int.random(in: 0...limit, using: &rng))
            let newPlain = Self.apply(operation, to: plain)

            // How many bytes the whole operation mutates.
            let whole = CuttingStorage(start.bytes, budget: .max)
            try Self.run(operation, on: EncryptedFile(opening: whole, key: key))
            #expect(try EncryptedFile(opening: whole.inner, key: key).readAll() == newPlain, "step \(step) \(operation)")

            var cuts = Set([0, 1, whole.spent - 1, whole.spent])
            for _ in 0..<24 { cuts.insert(Int.random(in: 0...whole.spent, using: &rng)) }
            let spared = operation.overlapped(fileSize: plain.count)
            for cut in cuts.sorted() where cut >= 0 {
                let storage = CuttingStorage(start.bytes, budget: cut)
                do { try Self.run(operation, on: EncryptedFile(opening: storage, key: key)) } catch is CuttingStorage.Cut {}
                let after = try EncryptedFile(opening: storage.inner, key: key)
                let size = try #require(try? after.plainSize(), "step \(step) \(operation) cut \(cut): invalid size \(storage.inner.bytes.count)")
                #expect(operation.sizesOnTheWay(from: plain.count, to: newPlain.count).contains(Int(size)), "step \(step) \(operation) cut \(cut)")
                for chunk in 0...Int(size) / Self.chunkSize where !spared.contains(chunk) {
                    let expected = Array(plain[chunk * Self.chunkSize..<min(plain.count, (chunk + 1) * Self.chunkSize)])
                    #expect(Self.openChunk(chunk, of: after, size: Int(size)) == expected,
                            "step \(step) \(operation) cut \(cut): chunk \(chunk) outside the operation changed")
                }
                checkedCuts += 1
            }
        }
        #expect(checkedCuts > 60 * 10)
    }

    static func apply(_ operation: Operation, to plain: [UInt8]) -> [UInt8] {
        var result = plain
        switch operation {
        case let .write(offset, count):
            if offset + count > result.count { result += [UInt8](repeating: 0, count: offset + count - result.count) }
            result.replaceSubrange(offset..<offset + count, with: (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) })
        case let .truncate(size):
            if size < result.count { result.removeLast(result.count - size) } else { result += [UInt8](repeating: 0, count: size - result.count) }
        }
        return result
    }

    static func run<S: CipherStorage>(_ operation: Operation, on file: EncryptedFile<S>) throws {
        switch operation {
        case let .write(offset, count):
            try file.write((0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) }, at: Int64(offset))
        case let .truncate(size):
            try file.truncate(to: Int64(size))
        }
    }

    /// Chunk `index` alone (nil if it fails authentication): a full chunk, or the final one.
    static func openChunk(_ index: Int, of file: EncryptedFile<MemoryStorage>, size: Int) -> [UInt8]? {
        let isFinal = index == size / chunkSize
        let length = isFinal ? size - index * chunkSize : chunkSize
        var plain = [UInt8](repeating: 0, count: length)
        do {
            try plain.withUnsafeMutableBytes { plain in
                try file.readRun(firstChunk: Int64(index), plainLength: length, fileSize: Int64(isFinal ? size : (index + 1) * chunkSize + 1),
                                 into: plain)
            }
        } catch { return nil }
        return plain
    }
}
