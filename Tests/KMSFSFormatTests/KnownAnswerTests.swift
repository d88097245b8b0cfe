import Foundation
import KMSFSCrypto
import Testing
import KMSFSTestSupport
@testable import KMSFSFormat

/// The vectors of docs/FORMAT.md, produced by the independent Python implementation
/// (Fixtures/kmsfs_format.py), reproduced byte for byte by the Swift implementation.
@Suite struct KnownAnswerTests {
    struct Vector: Decodable {
        let name: String
        let plaintextLength: Int
        let fileSHA256: String
        let fileLength: Int
        let fileHex: String?
        let finalChunkHex: String
    }
    struct Vectors: Decodable { let key, fileID: String; let chunkSize: Int; let vectors: [Vector] }

    static let plaintexts: [String: [UInt8]] = [
        "empty": [],
        "short": Array("Hello, kmsfs!".utf8),
        "one-full-chunk": (0..<4096).map { UInt8(($0 * 7) % 256) },
        "two-chunks-and-a-bit": (0..<10000).map { UInt8($0 % 251) },
    ]

    @Test func vectorsMatchTheReferenceImplementation() throws {
        let vectors = try JSONDecoder().decode(Vectors.self, from: Data(contentsOf: fixture("format-vectors.json")))
        #expect(vectors.vectors.count == Self.plaintexts.count)
        let key = SecretBytes(copying: bytes(hex: vectors.key))
        let header = FileHeader(chunkSize: vectors.chunkSize, fileID: FileID(bytes: bytes(hex: vectors.fileID)))
        for vector in vectors.vectors {
            let plaintext = try #require(Self.plaintexts[vector.name])
            #expect(plaintext.count == vector.plaintextLength)
            let cipher = ChunkCipher(key: key, header: header, parallelism: ChunkParallelism(), nonces: VectorNonces())
            let file = EncryptedFile(storage: MemoryStorage(), cipher: cipher)
            try file.initialize()
            try file.write(plaintext, at: 0)
            let stored = file.storage.bytes
            #expect(stored.count == vector.fileLength, "\(vector.name)")
            #expect(hex(SHA256.hash(stored)) == vector.fileSHA256, "\(vector.name)")
            if let fileHex = vector.fileHex { #expect(hex(stored) == fileHex, "\(vector.name)") }
            #expect(hex(Array(stored.suffix(vector.finalChunkHex.count / 2))) == vector.finalChunkHex)
            #expect(try EncryptedFile(opening: MemoryStorage(stored), key: key).readAll() == plaintext)
        }
    }

    /// The reference implementation decrypts files that Swift wrote through random operations.
    @Test func referenceImplementationReadsSwiftFiles() throws {
        var rng = SeededGenerator(seed: 99)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kmsfs-format-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for (n, chunkSize) in [4096, 4096, 16384, 65536].enumerated() {
            let (file, key) = try makeFile(chunkSize: chunkSize)
            for _ in 0..<20 {
                let offset = Int64.random(in: 0...Int64(3 * chunkSize), using: &rng)
                if Bool.random(using: &rng) {
                    try file.write(patternBytes(Int.random(in: 1...2 * chunkSize, using: &rng), seed: UInt8(n)), at: offset)
                } else {
                    try file.truncate(to: offset)
                }
            }
            let path = directory.appendingPathComponent("file\(n)")
            try Data(file.storage.bytes).write(to: path)
            let output = try runReference(["decrypt", key.withUnsafeBytes { hex(Array($0)) }, path.path])
            #expect(output.status == 0, "\(output.error)")
            #expect(Array(output.stdout) == (try file.readAll()))

            var tampered = file.storage.bytes
            tampered[tampered.count - 1] ^= 1
            try Data(tampered).write(to: path)
            #expect(try runReference(["decrypt", key.withUnsafeBytes { hex(Array($0)) }, path.path]).status == 1)
        }
    }

    func runReference(_ arguments: [String]) throws -> (status: Int32, stdout: Data, error: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", fixture("kmsfs_format.py").path] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, stdout, String(decoding: stderr, as: UTF8.self))
    }
}

/// docs/FORMAT.md quotes the vectors; it must quote the ones the tests check.
@Suite struct FormatDocumentTests {
    @Test func documentQuotesTheCheckedVectors() throws {
        let docURL = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/FORMAT.md")
        let document = try String(contentsOf: docURL, encoding: .utf8)
        let compact = document.filter { !$0.isWhitespace }
        let vectors = try JSONDecoder().decode(KnownAnswerTests.Vectors.self, from: Data(contentsOf: fixture("format-vectors.json")))
        for vector in vectors.vectors {
            #expect(document.contains(vector.fileSHA256), "\(vector.name)")
            #expect(document.contains(String(vector.finalChunkHex.suffix(32))), "\(vector.name): final tag")
            if let fileHex = vector.fileHex {
                // The document splits the bytes into labelled fields; joined, they are the file.
                let fields = document.components(separatedBy: "\n").filter { $0.first?.isHexDigit == true }
                    .map { $0.split(separator: " ").prefix { $0.allSatisfy(\.isHexDigit) }.joined() }
                #expect(compact.contains(fileHex) || fields.joined().contains(fileHex), "\(vector.name): full bytes")
            }
        }
    }
}
