import Foundation
import KMSClient
import KMSEngine
import KMSFSVolume
@testable import KMSFSCrypto
import Synchronization
import Testing

@Suite struct DataKeyCacheTests {
    final class Clock: Sendable {
        let time = Mutex(Date(timeIntervalSince1970: 1_000))
        func advance(_ seconds: TimeInterval) { time.withLock { $0 += seconds } }
    }

    @Test func hitsMissesAndTTL() throws {
        let clock = Clock()
        let cache = DataKeyCache(capacity: 8, ttl: 60, now: { clock.time.withLock { $0 } })
        var unwraps = 0
        func get(_ blob: [UInt8], _ context: EncryptionContext = ["f": "1"]) throws -> SecretBytes {
            try cache.key(for: blob, context: context) { () throws(KMSClientError) -> SecretBytes in
                unwraps += 1
                return SecretBytes(copying: blob)
            }
        }
        #expect(try get([1]) == SecretBytes(copying: [1]))
        #expect(try get([1]) == SecretBytes(copying: [1]))
        #expect(unwraps == 1)
        _ = try get([1], ["f": "2"])  // another context is another entry
        #expect(unwraps == 2)
        clock.advance(59)
        _ = try get([1])
        #expect(unwraps == 2)
        clock.advance(2)
        _ = try get([1])  // expired: unwrapped again
        #expect(unwraps == 3)
        let statistics = cache.statistics
        #expect(statistics.hits == 2 && statistics.misses == 3 && statistics.evictions == 1 && statistics.entries == 2)
    }

    /// A stored attribute naming another key for a cached blob is not answered from the cache:
    /// the key service decides, as it does on a cold cache.
    @Test func theNamedKeyIsPartOfTheEntry() throws {
        let cache = DataKeyCache(capacity: 8, ttl: 60)
        var unwraps = 0
        for keyID in ["arn:a", "arn:a", "arn:b", nil] {
            _ = try cache.key(for: [7], keyID: keyID, context: [:]) { () throws(KMSClientError) -> SecretBytes in
                unwraps += 1
                return SecretBytes(copying: [7])
            }
        }
        #expect(unwraps == 3)
    }

    @Test func boundedLeastRecentlyUsedFirst() throws {
        let cache = DataKeyCache(capacity: 3, ttl: 600)
        var unwraps = 0
        func get(_ n: UInt8) throws {
            _ = try cache.key(for: [n], context: [:]) { () throws(KMSClientError) -> SecretBytes in
                unwraps += 1
                return SecretBytes(copying: [n])
            }
        }
        for n: UInt8 in [1, 2, 3] { try get(n) }
        try get(1)  // 1 is now the most recent
        try get(4)  // evicts 2, the least recently used
        #expect(cache.statistics.entries == 3 && cache.statistics.evictions == 1)
        unwraps = 0
        try get(1); try get(3); try get(4)
        #expect(unwraps == 0)
        try get(2)
        #expect(unwraps == 1)
    }

    /// An evicted key that nobody else holds is wiped when the cache lets go of it.
    @Test func evictedKeysAreWiped() throws {
        let cache = DataKeyCache(capacity: 1, ttl: 600)
        let seen = Mutex<[UInt8]?>(nil)
        do {
            let key = SecretBytes(count: 32, beforeRelease: { bytes in seen.withLock { $0 = Array(bytes) } }) {
                $0.initializeMemory(as: UInt8.self, repeating: 0x5C)
            }
            cache.insert(key, for: [9], context: [:])
        }
        #expect(seen.withLock { $0 } == nil)  // still cached
        cache.insert(SecretBytes(copying: [1]), for: [8], context: [:])  // evicts it
        #expect(seen.withLock { $0 } == [UInt8](repeating: 0, count: 32))
    }
}

/// Waits up to 30 s for a background refill to bring `condition` about. Generous: the refill is a
/// background thread on a shared 2-core machine that may be compiling at the same time (a CI run
/// once took more than 5 s here).
func waitFor(_ condition: () -> Bool) {
    var waited = 0
    while !condition() && waited < 12_000 { usleep(10_000); waited += 1 }  // up to 2 min: CI runs suites in parallel
}

@Suite struct KeyPoolTests {
    static func context(_ fileID: [UInt8]) -> EncryptionContext {
        ["kmsfs:volume": "test", "kmsfs:file": fileID.map { String($0, radix: 16) }.joined()]
    }

    /// 100 000 draws: every data key and every file ID is new, and each wrapped key opens only
    /// under its own context.
    @Test func neverRepeatsAKey() throws {
        let f = try EmbeddedFixture()
        let key = try f.key()
        let pool = KeyPool(client: f.client, keyID: key, size: 256, lowWater: 128, concurrency: 2, contextFor: Self.context)
        var keys = Set<[UInt8]>(), fileIDs = Set<[UInt8]>(), blobs = Set<[UInt8]>()
        keys.reserveCapacity(100_000)
        var sample: KeyPool.PooledKey?
        for n in 0..<100_000 {
            let drawn = try pool.take()
            #expect(keys.insert(SHA256.hash(drawn.dataKey.plaintext.withUnsafeBytes { Array($0) })).inserted)
            #expect(fileIDs.insert(drawn.fileID).inserted)
            #expect(blobs.insert(drawn.dataKey.ciphertextBlob).inserted)
            if n == 50_000 { sample = drawn }
        }
        #expect(keys.count == 100_000 && fileIDs.count == 100_000)
        let drawn = try #require(sample)
        #expect(try f.client.decrypt(ciphertextBlob: drawn.dataKey.ciphertextBlob, context: drawn.context, keyID: nil) == drawn.dataKey.plaintext)
        #expect(throws: KMSClientError.self) {
            try f.client.decrypt(ciphertextBlob: drawn.dataKey.ciphertextBlob, context: Self.context([0]), keyID: nil)
        }
        let statistics = pool.statistics
        #expect(statistics.served == 100_000 && statistics.generated >= 100_000)
    }

    /// A real engine behind a client that fails one GenerateDataKey as a lost connection would.
    final class FailsOnce: KMSClient, @unchecked Sendable {
        let inner: EmbeddedKMSClient
        let failAt: Int
        private let calls = Mutex(0)
        init(_ inner: EmbeddedKMSClient, failAt: Int) { self.inner = inner; self.failAt = failAt }
        func generateDataKey(keyID: String, context: EncryptionContext) throws(KMSClientError) -> DataKey {
            let call = calls.withLock { $0 += 1; return $0 }
            if call == failAt { throw KMSClientError(.unreachable, message: "connection reset (injected)") }
            return try inner.generateDataKey(keyID: keyID, context: context)
        }
        func decrypt(ciphertextBlob: [UInt8], context: EncryptionContext, keyID: String?) throws(KMSClientError) -> SecretBytes {
            try inner.decrypt(ciphertextBlob: ciphertextBlob, context: context, keyID: keyID)
        }
        func reEncrypt(ciphertextBlob: [UInt8], sourceContext: EncryptionContext, destinationKeyID: String,
                       destinationContext: EncryptionContext) throws(KMSClientError) -> [UInt8] {
            try inner.reEncrypt(ciphertextBlob: ciphertextBlob, sourceContext: sourceContext, destinationKeyID: destinationKeyID,
                                destinationContext: destinationContext)
        }
        func describeKey(keyID: String) throws(KMSClientError) -> KeyDescription { try inner.describeKey(keyID: keyID) }
        func encrypt(keyID: String, plaintext: SecretBytes, context: EncryptionContext) throws(KMSClientError) -> [UInt8] {
            try inner.encrypt(keyID: keyID, plaintext: plaintext, context: context)
        }
    }

    /// A passing failure while refilling leaves the pool full again soon, without a take.
    @Test func aPassingFailureDoesNotLeaveThePoolShort() throws {
        let f = try EmbeddedFixture()
        let key = try f.key()
        let pool = KeyPool(client: FailsOnce(f.client, failAt: 20), keyID: key, size: 16, lowWater: 4, concurrency: 1, contextFor: Self.context)
        waitFor { pool.statistics.ready == 16 }
        for _ in 0..<13 { _ = try pool.take() }  // 3 left: below the low-water mark, a refill starts and fails at its 4th key
        waitFor { pool.statistics.ready == 16 }
        #expect(pool.statistics.ready == 16)
        pool.shutdown()
    }

    /// Once warmed up, takes do not wait for the service: the pool refills in the background.
    @Test func servesFromThePoolAndRefills() throws {
        let f = try EmbeddedFixture()
        let key = try f.key()
        let pool = KeyPool(client: f.client, keyID: key, size: 32, lowWater: 16, concurrency: 1, contextFor: Self.context)
        waitFor { pool.statistics.ready == 32 }
        #expect(pool.statistics.ready == 32)
        for _ in 0..<20 { _ = try pool.take() }
        #expect(pool.statistics.servedWithoutWaiting == 20)
        waitFor { pool.statistics.ready == 32 }
        #expect(pool.statistics.ready == 32, "last refill error: \(String(describing: pool.lastError))")
        pool.shutdown()
        #expect(pool.statistics.ready == 0)
    }

    @Test func errorsSurfaceOnTake() throws {
        let f = try EmbeddedFixture()
        let key = try f.key()
        try f.engine.disableKey(keyID: key, caller: f.caller)
        let pool = KeyPool(client: f.client, keyID: key, size: 4, lowWater: 2, contextFor: Self.context)
        let error = try #require(throws: KMSClientError.self) { try pool.take() }
        #expect(error.kind == .keyUnusable(state: "Disabled"))
        try f.engine.enableKey(keyID: key, caller: f.caller)
        #expect(try pool.take().dataKey.plaintext.count == 32)
    }

    /// Keys generated before a key was disabled are not handed out once they are older than the
    /// pool's maximum age: the next creation asks the service and is refused.
    @Test func expiredKeysAreDropped() throws {
        let f = try EmbeddedFixture()
        let key = try f.key()
        let clock = DataKeyCacheTests.Clock()
        let pool = KeyPool(client: f.client, keyID: key, size: 8, lowWater: 4, concurrency: 1, maximumAge: 30,
                           now: { clock.time.withLock { $0 } }, contextFor: Self.context)
        waitFor { pool.statistics.ready == 8 }
        try f.engine.disableKey(keyID: key, caller: f.caller)
        clock.advance(31)
        let error = try #require(throws: KMSClientError.self) { try pool.take() }
        #expect(error.kind == .keyUnusable(state: "Disabled"))
        #expect(pool.statistics.expired == 8)
    }

    /// The first refill the service refuses for the key's state drops every ready key.
    @Test func aRefusedRefillDrainsThePool() throws {
        let f = try EmbeddedFixture()
        let key = try f.key()
        let pool = KeyPool(client: f.client, keyID: key, size: 8, lowWater: 8, concurrency: 1, contextFor: Self.context)
        waitFor { pool.statistics.ready == 8 }
        try f.engine.disableKey(keyID: key, caller: f.caller)
        _ = try pool.take()  // made while the key was enabled; its refill is refused
        waitFor { pool.statistics.drained > 0 }
        #expect(pool.statistics.drained == 7 && pool.statistics.ready == 0)
        let error = try #require(throws: KMSClientError.self) { try pool.take() }
        #expect(error.kind == .keyUnusable(state: "Disabled"))
    }
}
