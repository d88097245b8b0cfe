import ArgumentParser
import KMSFSCrypto
import KMSFSFormat

/// `kmsfs bench crypto`: chunk seal/open throughput, one thread and parallel.
///
/// Prints one tab-separated line per measurement (`chunk`, `operation`, `mode`, `MB/s`, median of
/// the rounds), which scripts/bench-crypto sets beside `openssl speed` from the same run.
struct CryptoBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crypto",
        abstract: "Seal and open throughput of chunks (XAES-256-GCM), one thread and parallel."
    )

    @Option(help: "Chunk sizes in bytes, comma-separated.")
    var chunkSizes: String = "4096,16384,65536"

    @Option(help: "Buffer size in MiB for the multi-chunk measurements.")
    var bufferMiB: Int = 16

    @Option(help: "Seconds per measurement round.")
    var seconds: Double = 0.5

    @Option(help: "Rounds per measurement (the median is reported).")
    var rounds: Int = 3

    func run() throws {
        let sizes = chunkSizes.split(separator: ",").compactMap { Int($0) }
        let key = try SecretBytes.random(count: 32)
        print("chunk\toperation\tmode\tMB/s")
        for size in sizes {
            let header = FileHeader(chunkSize: size, fileID: try .random())
            let serial = ChunkCipher(key: key, header: header, parallelism: .serial)
            let parallel = ChunkCipher(key: key, header: header)
            let bufferBytes = bufferMiB << 20
            var results: [(String, String, Double)] = []
            for round in 0..<rounds {
                _ = round
                results.append(("seal", "1 thread, 1 chunk", try measure(serial, plainBytes: size, seal: true)))
                results.append(("seal", "cipher only: XAES-256-GCM", try measureContext(AESGCMContextKind.xaes, key: key, plainBytes: size)))
                results.append(("seal", "cipher only: AES-256-GCM (format 1)", try measureContext(AESGCMContextKind.gcm, key: key, plainBytes: size)))
                results.append(("open", "1 thread, 1 chunk", try measure(serial, plainBytes: size, seal: false)))
                results.append(("seal", "1 thread, \(bufferMiB) MiB", try measure(serial, plainBytes: bufferBytes, seal: true)))
                results.append(("open", "1 thread, \(bufferMiB) MiB", try measure(serial, plainBytes: bufferBytes, seal: false)))
                results.append(("seal", "parallel, \(bufferMiB) MiB", try measure(parallel, plainBytes: bufferBytes, seal: true)))
                results.append(("open", "parallel, \(bufferMiB) MiB", try measure(parallel, plainBytes: bufferBytes, seal: false)))
            }
            var seen: [String] = []
            for (operation, mode, _) in results where !seen.contains(operation + mode) {
                seen.append(operation + mode)
                let values = results.filter { $0.0 == operation && $0.1 == mode }.map(\.2).sorted()
                print("\(size)\t\(operation)\t\(mode)\t\(String(format: values[values.count / 2]))")
            }
        }
    }

    enum AESGCMContextKind { case xaes, gcm }

    /// Seals one chunk with a bare cipher context and a random nonce, without the chunk layer:
    /// what XAES's per-seal key derivation costs next to format 1's AES-256-GCM under one key.
    private func measureContext(_ kind: AESGCMContextKind, key: SecretBytes, plainBytes: Int) throws -> Double {
        let nonceBytes = kind == .xaes ? XAESGCMContext.nonceByteCount : AESGCM.nonceByteCount
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: plainBytes + nonceBytes + 16, alignment: 64)
        defer { buffer.deallocate() }
        try SecureRandom.fill(buffer)
        let text = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<plainBytes])
        let nonce = UnsafeMutableRawBufferPointer(rebasing: buffer[plainBytes..<plainBytes + nonceBytes])
        let tag = UnsafeMutableRawBufferPointer(rebasing: buffer[(plainBytes + nonceBytes)...])
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        switch kind {
        case .xaes:
            let context = try XAESGCMContext(key: key)
            return try timed(plainBytes: plainBytes) {
                try context.randomNonces(nonce)
                try context.seal(nonce: UnsafeRawBufferPointer(nonce), additionalData: none, plaintext: UnsafeRawBufferPointer(text), ciphertext: text, tag: tag)
            }
        case .gcm:
            let context = try AESGCMContext(key: key)
            return try timed(plainBytes: plainBytes) {
                try context.randomNonces(nonce)
                try context.seal(nonce: UnsafeRawBufferPointer(nonce), additionalData: none, plaintext: UnsafeRawBufferPointer(text), ciphertext: text, tag: tag)
            }
        }
    }

    /// Runs `operation` (one pass over `plainBytes`) repeatedly for `seconds`; returns MB/s.
    private func timed(plainBytes: Int, _ operation: () throws -> Void) throws -> Double {
        let clock = ContinuousClock()
        let budget = Duration.milliseconds(Int(seconds * 1000))
        var operations = 0
        let start = clock.now
        while clock.now - start < budget {
            for _ in 0..<8 { try operation() }
            operations += 8
        }
        let elapsed = clock.now - start
        let secondsTaken = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Double(operations * plainBytes) / secondsTaken / 1e6
    }

    /// Seals (or opens) `plainBytes` of whole chunks repeatedly for `seconds`; returns MB/s of plaintext.
    private func measure(_ cipher: ChunkCipher, plainBytes: Int, seal: Bool) throws -> Double {
        let plaintext = UnsafeMutableRawBufferPointer.allocate(byteCount: plainBytes, alignment: 64)
        let cipherLength = cipher.geometry.cipherLength(forPlainLength: plainBytes, endsFile: false)
        let ciphertext = UnsafeMutableRawBufferPointer.allocate(byteCount: cipherLength, alignment: 64)
        defer { plaintext.deallocate(); ciphertext.deallocate() }
        try SecureRandom.fill(plaintext)
        try cipher.seal(UnsafeRawBufferPointer(plaintext), firstChunk: 0, endsFile: false, into: ciphertext)

        return try timed(plainBytes: plainBytes) {
            if seal {
                try cipher.seal(UnsafeRawBufferPointer(plaintext), firstChunk: 0, endsFile: false, into: ciphertext)
            } else {
                try cipher.open(UnsafeRawBufferPointer(ciphertext), firstChunk: 0, endsFile: false, into: plaintext)
            }
        }
    }
}

extension String {
    /// `value` with one decimal, without Foundation's formatter.
    init(format value: Double) {
        let tenths = Int((value * 10).rounded())
        self = "\(tenths / 10).\(tenths % 10)"
    }
}
