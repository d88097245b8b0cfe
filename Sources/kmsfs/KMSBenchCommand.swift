import ArgumentParser
import Dispatch
import Foundation
import KMSEngine
import KMSFSCrypto

/// `kmsfs bench kms`: in-process key service calls per second (audit on, real SQLite store).
///
/// Prints one tab-separated line per measurement: `operation`, `threads`, `calls/s` (median of
/// the rounds). The audit trail is flushed and verified at the end, so that records the
/// measurement produced are part of the cost and are known to be complete.
struct KMSBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kms",
        abstract: "Encrypt, Decrypt and GenerateDataKey calls per second on the embedded key service."
    )

    @Option(help: "Seconds per measurement round.")
    var seconds: Double = 1

    @Option(help: "Rounds per measurement (the median is reported).")
    var rounds: Int = 3

    func run() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kmsfs-bench-kms-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let engine = try KMSEngine.open(path: directory.appendingPathComponent("keys.sqlite").path, rootKey: .generate())
        let caller = Caller(account: "111122223333", region: "us-east-1", requestID: "bench")
        let key = try engine.createKey(CreateKeyRequest(), caller: caller).keyMetadata.keyId
        let context = ["volume": "bench", "file": "0123456789abcdef0123456789abcdef"]
        let plaintext = try SecretBytes.random(count: 32)
        let blob = try engine.encrypt(keyID: key, plaintext: plaintext, encryptionContext: context, caller: caller).ciphertextBlob

        let operations: [(String, () throws -> Void)] = [
            ("GenerateDataKey", { _ = try engine.generateDataKey(keyID: key, keySpec: .aes256, encryptionContext: context, caller: caller) }),
            ("Encrypt", { _ = try engine.encrypt(keyID: key, plaintext: plaintext, encryptionContext: context, caller: caller) }),
            ("Decrypt", { _ = try engine.decrypt(ciphertextBlob: blob, encryptionContext: context, caller: caller) }),
        ]
        print("operation\tthreads\tcalls/s")
        var total = 0
        for (name, call) in operations {
            for threads in [1, 2] {
                var results: [Double] = []
                for _ in 0..<rounds {
                    let (rate, calls) = try measure(threads: threads, call, then: { try engine.flushAudit() })
                    results.append(rate)
                    total += calls
                }
                results.sort()
                print("\(name)\t\(threads)\t\(Int(results[results.count / 2]))")
            }
        }
        let verification = try engine.verifyAudit()
        guard verification.isIntact, verification.verifiedCount >= Int64(total) else {
            throw ValidationError("audit trail incomplete after the benchmark: \(verification)")
        }
        print("# audit records verified: \(verification.verifiedCount)")
    }

    /// Runs `call` on `threads` threads for `seconds`, then `finish` (writing the audit records
    /// the calls produced, inside the timed window); returns calls per second and the call count.
    private func measure(threads: Int, _ call: () throws -> Void, then finish: () throws -> Void) throws -> (Double, Int) {
        let clock = ContinuousClock()
        let budget = Duration.milliseconds(Int(seconds * 1000))
        let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: threads)
        counts.initialize(repeating: 0)
        defer { counts.deallocate() }
        let start = clock.now
        withoutActuallyEscaping(call) { call in
            let shared = BenchShared(call: call, counts: counts)
            DispatchQueue.concurrentPerform(iterations: threads) { thread in
                var n = 0
                while clock.now - start < budget {
                    for _ in 0..<64 { try? shared.call() }
                    n += 64
                }
                shared.counts[thread] = n
            }
        }
        try finish()
        let elapsed = clock.now - start
        let secondsTaken = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let calls = counts.reduce(0, +)
        return (Double(calls) / secondsTaken, calls)
    }
}

/// `@unchecked Sendable`: concurrentPerform returns only when every thread is done, and each
/// thread writes only its own count.
private struct BenchShared: @unchecked Sendable {
    let call: () throws -> Void
    let counts: UnsafeMutableBufferPointer<Int>
}
