import ArgumentParser
import Foundation
import KMSClient
import KMSFSVolume
import KMSEngine
import KMSFSCrypto

/// `kmsfs bench client`: how fast file creation gets its keys (pool on and off) and how fast
/// reopening gets them back (cache hits and misses), against one key service.
///
/// Prints tab-separated lines: `measurement`, `per second`.
struct ClientBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "Key acquisition (pool on/off) and Decrypt (cache hit/miss) rates against a key service."
    )

    @Option(help: "A remote endpoint (http://, https://, unix://); the embedded service if omitted.")
    var endpoint: String?

    @Option(help: "Access key ID for the remote endpoint.") var accessKeyID: String = "testing"
    @Option(help: "Secret access key for the remote endpoint.") var secretAccessKey: String = "testing"
    @Option(help: "Seconds per measurement.") var seconds: Double = 3

    func run() throws {
        let (client, keyID, cleanUp) = try makeClient()
        defer { cleanUp() }
        let context: @Sendable ([UInt8]) -> EncryptionContext = { ["kmsfs:volume": "bench", "kmsfs:file": hex($0)] }

        let direct = try rate { _ = try client.generateDataKey(keyID: keyID, context: context(Array(repeating: 1, count: 16))) }
        print("GenerateDataKey without pool\t\(Int(direct.rate))")

        let pool = KeyPool(client: client, keyID: keyID, size: 512, lowWater: 256, concurrency: 4, contextFor: context)
        // Let the pool fill first: the question is how fast creation goes while the pool keeps up.
        let fillDeadline = Date().addingTimeInterval(30)
        while pool.statistics.ready < 512 && Date() < fillDeadline { usleep(10_000) }
        let pooled = try rate { _ = try pool.take() }
        print("keys for new files, pool on\t\(Int(pooled.rate))")
        print("# pool: \(pool.statistics.servedWithoutWaiting) of \(pool.statistics.served) served without waiting")
        pool.shutdown()

        let blobs = try (0..<2000).map { _ in try client.generateDataKey(keyID: keyID, context: ["f": "1"]).ciphertextBlob }
        let cache = DataKeyCache(capacity: 4096, ttl: 300)
        var next = 0
        let misses = try rate(limit: blobs.count) {
            let blob = blobs[next]
            next += 1
            _ = try cache.key(for: blob, context: ["f": "1"]) { () throws(KMSClientError) -> SecretBytes in
                try client.decrypt(ciphertextBlob: blob, context: ["f": "1"], keyID: nil)
            }
        }
        print("Decrypt, cache miss\t\(Int(misses.rate))")
        let hits = try rate {
            _ = try cache.key(for: blobs[0], context: ["f": "1"]) { () throws(KMSClientError) -> SecretBytes in
                try client.decrypt(ciphertextBlob: blobs[0], context: ["f": "1"], keyID: nil)
            }
        }
        print("Decrypt, cache hit\t\(Int(hits.rate))")
    }

    private func makeClient() throws -> (any KMSClient, String, () -> Void) {
        if let endpoint {
            let client = try HTTPKMSClient(configuration: AWSConfiguration(endpoint: endpoint, region: "us-east-1",
                                                                           accessKeyID: accessKeyID, secretAccessKey: secretAccessKey))
            let keyID = try client.call("CreateKey", []).object("KeyMetadata").string("KeyId")
            return (client, keyID, {})
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kmsfs-bench-client-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let engine = try KMSEngine.open(path: directory.appendingPathComponent("keys.sqlite").path, rootKey: .generate())
        let caller = Caller(account: "111122223333", region: "us-east-1", viaService: "kmsfs")
        let keyID = try engine.createKey(CreateKeyRequest(), caller: caller).keyMetadata.keyId
        return (EmbeddedKMSClient(engine: engine, caller: caller), keyID, { try? FileManager.default.removeItem(at: directory) })
    }

    /// Calls `body` for `seconds` (or `limit` times); returns calls per second.
    private func rate(limit: Int = .max, _ body: () throws -> Void) throws -> (rate: Double, calls: Int) {
        let clock = ContinuousClock()
        let start = clock.now
        var calls = 0
        while calls < limit, clock.now - start < .milliseconds(Int(seconds * 1000)) {
            try body()
            calls += 1
        }
        let elapsed = clock.now - start
        return (Double(calls) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18), calls)
    }
}
