import CLinux
import Foundation
import KMSFSFormat
@testable import KMSFSVolume
import Testing

/// Random tampering with real backing files and their key attributes, as someone with write
/// access to the backing directory could do it: bit flips, truncation, extension, chunk swaps
/// within and across files, header edits, attributes swapped, cut or flipped, whole files
/// replaced. Every mutation is undone before the next. A read of the tampered file either fails
/// (an error: EIO through the mount) or returns exactly the original bytes — or, when a whole
/// file was moved with its attribute, exactly that other file (undetectable by design, see the
/// threat model); the untouched files always read.
@Suite struct TamperingTests {
    static let mutations = Int(ProcessInfo.processInfo.environment["KMSFS_TAMPER_MUTATIONS"] ?? "") ?? 10_000

    struct Generator {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(max(bound, 1)))
        }
    }

    @Test func everyMutationFailsOrReadsTheOriginal() throws {
        let v = try BackingFileTests.Volume()
        let keys = v.keys()  // one cache for the run, as a long-lived mount has
        var random = Generator(state: 0x7a3b)
        let sizes = [0, 1, 100, 16383, 16384, 16385, 50_000, 70_000]
        var originals: [String: [UInt8]] = [:]
        for (i, size) in sizes.enumerated() {
            let path = v.cipher + "/f\(i)"
            let plain = (0..<size).map { _ in UInt8(random.next(256)) }
            let (fd, file) = try BackingFile.create(path: path, keys: keys, keyID: v.configuration.defaultKeyID)
            try plain.withUnsafeBytes { try file.write($0, at: 0) }
            close(fd)
            originals[path] = plain
        }
        let paths = originals.keys.sorted()
        func contents(_ path: String) -> [UInt8] { Array(FileManager.default.contents(atPath: path)!) }
        func attribute(_ path: String) -> [UInt8] {
            var value = [UInt8](repeating: 0, count: 4096)
            let count = getxattr(path, WrappedFileKey.attributeName, &value, value.count)
            return Array(value[0..<max(count, 0)])
        }
        func setAttribute(_ path: String, _ value: [UInt8]) { _ = setxattr(path, WrappedFileKey.attributeName, value, value.count, 0) }
        /// Reads the whole file the way the mount does: nil when it fails.
        func readBack(_ path: String) -> [UInt8]? {
            let fd = open(path, O_RDONLY)
            defer { close(fd) }
            guard let file = try? BackingFile.open(fd: fd, keys: keys) else { return nil }
            var buffer = [UInt8](repeating: 0, count: 80_000)
            guard let count = try? buffer.withUnsafeMutableBytes({ try file.read(into: $0, at: 0) }) else { return nil }
            // The read at the end (which authenticates the final chunk) must pass too.
            var tail = [UInt8](repeating: 0, count: 1)
            guard (try? tail.withUnsafeMutableBytes({ try file.read(into: $0, at: Int64(count)) })) == 0 else { return nil }
            return Array(buffer[0..<count])
        }

        let chunk = ChunkGeometry(plainChunkSize: v.configuration.chunkSize)
        let cipherChunk = Int(chunk.cipherOffset(ofChunk: 1) - chunk.cipherOffset(ofChunk: 0))
        var refused = 0, unchanged = 0
        for step in 0..<Self.mutations {
            let path = paths[random.next(paths.count)]
            let other = paths[random.next(paths.count)]
            let savedBytes = contents(path), savedAttribute = attribute(path)
            var bytes = savedBytes, value = savedAttribute
            var wholeSwap: String?
            let kind = random.next(9)
            switch kind {
            case 0:  // flip one bit anywhere
                if !bytes.isEmpty { bytes[random.next(bytes.count)] ^= UInt8(1 << random.next(8)) }
            case 1:  // cut the file
                bytes = Array(bytes.prefix(random.next(bytes.count)))
            case 2:  // extend it
                bytes += (0..<(1 + random.next(40))).map { _ in UInt8(random.next(256)) }
            case 3:  // swap two chunks within the file
                let count = (bytes.count - FileHeader.byteCount) / cipherChunk
                if count >= 2 {
                    let a = random.next(count), b = random.next(count)
                    let ra = FileHeader.byteCount + a * cipherChunk, rb = FileHeader.byteCount + b * cipherChunk
                    let ca = Array(bytes[ra..<ra + cipherChunk])
                    bytes.replaceSubrange(ra..<ra + cipherChunk, with: bytes[rb..<rb + cipherChunk])
                    bytes.replaceSubrange(rb..<rb + cipherChunk, with: ca)
                }
            case 4:  // a chunk from another file at the same index
                let donor = contents(other)
                let index = random.next(max((min(bytes.count, donor.count) - FileHeader.byteCount) / cipherChunk, 1))
                let at = FileHeader.byteCount + index * cipherChunk
                if at + cipherChunk <= min(bytes.count, donor.count) { bytes.replaceSubrange(at..<at + cipherChunk, with: donor[at..<at + cipherChunk]) }
            case 5:  // edit the header
                if bytes.count >= FileHeader.byteCount { bytes[random.next(FileHeader.byteCount)] ^= UInt8(1 + random.next(255)) }
            case 6:  // another file's key attribute
                value = attribute(other)
            case 7:  // a cut or flipped attribute
                if random.next(2) == 0 { value = Array(value.prefix(random.next(value.count))) } else if !value.isEmpty {
                    value[random.next(value.count)] ^= UInt8(1 << random.next(8))
                }
            default:  // the whole file from another, with or without its attribute
                bytes = contents(other)
                if random.next(2) == 0 {
                    value = attribute(other)
                    // A whole file moved with its attribute is that file, under another name:
                    // out of reach of per-file encryption (docs/FORMAT.md, threat model).
                    wholeSwap = other
                }
            }
            FileManager.default.createFile(atPath: path, contents: Data(bytes))
            setAttribute(path, value)
            if let read = readBack(path) {
                // Reading is allowed only when the file is, in effect, the original (a swap of
                // identical chunks, a file replaced by itself) or another whole file with its
                // own attribute: then it must be exactly that file.
                let genuine = read == originals[path] || (wholeSwap.map { read == originals[$0] } ?? false)
                #expect(genuine, "mutation \(kind) at step \(step) of \(path) returned other bytes")
                unchanged += 1
            } else {
                refused += 1
            }
            FileManager.default.createFile(atPath: path, contents: Data(savedBytes))
            setAttribute(path, savedAttribute)
            if step % 1000 == 999 {
                for p in paths {
                    let intact = readBack(p) == originals[p]
                    #expect(intact, "\(p) after step \(step)")
                }
            }
        }
        #expect(refused + unchanged == Self.mutations && refused > Self.mutations / 2)
    }
}
