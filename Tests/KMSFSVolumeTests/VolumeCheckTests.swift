import CLinux
import Foundation
import KMSFSFormat
@testable import KMSFSVolume
import Testing

/// `kmsfs fsck`'s engine on real backing files: each kind of damage is reported for the file and
/// the byte ranges it affects, and nothing else is.
@Suite struct VolumeCheckTests {
    let v: BackingFileTests.Volume
    let chunk: Int
    init() throws {
        v = try BackingFileTests.Volume()
        chunk = v.configuration.chunkSize
    }

    /// A file of `size` patterned bytes, written through the format as a mount writes it.
    func make(_ name: String, size: Int) throws {
        try FileManager.default.createDirectory(atPath: (v.cipher + "/" + name as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let (fd, file) = try BackingFile.create(path: v.cipher + "/" + name, keys: v.keys(), keyID: v.configuration.defaultKeyID, holes: .sparse)
        defer { close(fd) }
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        try bytes.withUnsafeBytes { try file.write($0, at: 0) }
    }

    /// Changes stored bytes in place: `edit` gets the whole backing file.
    func tamper(_ name: String, _ edit: (inout [UInt8]) -> Void) throws {
        let url = URL(fileURLWithPath: v.cipher + "/" + name)
        var bytes = Array(try Data(contentsOf: url))
        edit(&bytes)
        let fd = open(url.path, O_WRONLY | O_TRUNC)
        defer { close(fd) }
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// The stored offset of chunk `n`'s ciphertext (past its nonce).
    func inChunk(_ n: Int) -> Int { FileHeader.byteCount + n * (chunk + ChunkGeometry.chunkOverhead) + 20 }

    func run() throws -> [VolumeCheck.Finding] { try VolumeCheck(cipherDirectory: v.cipher, keys: v.keys(), holes: .sparse).run().findings }

    @Test func aCleanVolumeHasNoFindings() throws {
        for (name, size) in [("empty", 0), ("small", 100), ("exact", 2 * chunk), ("nested/deeper/big", 5 * chunk + 3)] {
            try make(name, size: size)
        }
        symlink("small", v.cipher + "/link")
        let report = try VolumeCheck(cipherDirectory: v.cipher, keys: v.keys(), holes: .sparse).run()
        #expect(report.filesChecked == 4 && report.findings.isEmpty && report.isClean)
    }

    @Test func eachKindOfDamageIsNamedWithItsRanges() throws {
        let size = Int64(5 * chunk + 100)
        try make("a-flips", size: Int(size))
        try tamper("a-flips") { bytes in
            for n in [1, 3, 4, 5] { bytes[inChunk(n)] ^= 0x01 }  // 3, 4 and the final 5 adjoin
        }
        try make("b-stripped", size: 10)
        removexattr(v.cipher + "/b-stripped", WrappedFileKey.attributeName)
        try make("c-cut", size: 3 * chunk)
        try tamper("c-cut") { bytes in bytes.removeLast(5) }
        try make("d-end", size: 2 * chunk)  // the final chunk holds no bytes
        try tamper("d-end") { bytes in bytes[bytes.count - 1] ^= 0x80 }
        try make("e-sparse", size: 3 * chunk + 1)
        try tamper("e-sparse") { bytes in
            let start = inChunk(1) - 20
            bytes.replaceSubrange(start..<start + chunk + ChunkGeometry.chunkOverhead,
                                  with: [UInt8](repeating: 0, count: chunk + ChunkGeometry.chunkOverhead))
        }
        try make("f-untouched", size: 4 * chunk)

        let c = Int64(chunk)
        let findings = try run()
        #expect(findings.count == 5)
        #expect(findings.contains(.damaged(path: "a-flips", ranges: [c..<2 * c, 3 * c..<size], failingEnd: nil)))
        #expect(findings.contains(.unreadable(path: "b-stripped", reason: "\(FileKeyError.missingAttribute)")))
        #expect(findings.contains { if case .unreadable("c-cut", let reason) = $0 { reason.contains("not a valid layout") } else { false } })
        #expect(findings.contains(.damaged(path: "d-end", ranges: [], failingEnd: 2 * c)))
        #expect(findings.contains(.holes(path: "e-sparse", ranges: [c..<2 * c])))
        #expect(!findings.contains { "\($0)".contains("f-untouched") })
        #expect(!(try VolumeCheck(cipherDirectory: v.cipher, keys: v.keys(), holes: .sparse).run().isClean))
    }

    /// The ranges fsck reports are exactly the ones a read through the format refuses.
    @Test func reportedRangesAreTheUnreadableOnes() throws {
        try make("f", size: 6 * chunk + 500)
        try tamper("f") { bytes in
            bytes[inChunk(2)] ^= 0x10
            bytes[inChunk(4)] ^= 0x10
        }
        let findings = try run()
        guard case let .damaged(_, ranges, failingEnd) = try #require(findings.first), findings.count == 1 else {
            Issue.record("expected one damaged file: \(findings)")
            return
        }
        #expect(failingEnd == nil)
        let fd = open(v.cipher + "/f", O_RDONLY)
        defer { close(fd) }
        let file = try BackingFile.open(fd: fd, keys: v.keys(), holes: .sparse)
        var buffer = [UInt8](repeating: 0, count: 64)
        for offset in stride(from: Int64(0), to: Int64(6 * chunk + 500), by: 4001) {
            let readable = (try? buffer.withUnsafeMutableBytes { try file.read(into: $0, at: offset) }) != nil
            let reported = ranges.contains { $0.overlaps(offset..<offset + 64) }
            #expect(readable != reported, "offset \(offset)")
        }
    }

    /// The wrapped key of another file: the key service unwraps it, but it is not this file's.
    @Test func aKeyAttributeFromAnotherFileIsUnreadable() throws {
        try make("one", size: 10)
        try make("two", size: 10)
        var value = [UInt8](repeating: 0, count: 4096)
        let count = getxattr(v.cipher + "/one", WrappedFileKey.attributeName, &value, value.count)
        setxattr(v.cipher + "/two", WrappedFileKey.attributeName, value, count, 0)
        #expect(try run() == [.unreadable(path: "two", reason: "\(FileKeyError.fileIDMismatch)")])
    }
}
