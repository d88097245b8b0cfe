import Foundation
import KMSVocabulary
import KMSFSCrypto
import Synchronization

/// Unwrapped data keys, so that reopening a file needs no Decrypt call.
///
/// Keyed by SHA-256 of the wrapped blob and the canonical context (never the plaintext). Bounded in
/// entries (least recently used goes first) and in age (an entry older than ``ttl`` is not served:
/// a key disabled at the service stops opening files within that time). An evicted key is dropped,
/// and ``SecretBytes`` wipes it when the last user (an open file) lets go.
///
/// Defaults: 4096 entries, 300 s — about the number of files a busy process keeps open, and the
/// delay after which a disabled KMS key takes effect on reopen.
public final class DataKeyCache: Sendable {
    public struct Statistics: Sendable, Equatable {
        public var hits = 0
        public var misses = 0
        public var evictions = 0
        public var entries = 0
    }

    private struct Entry {
        let key: SecretBytes
        let stored: Date
        var lastUse: UInt64
    }

    private struct State {
        var entries: [[UInt8]: Entry] = [:]
        var clock: UInt64 = 0
        var statistics = Statistics()
    }

    public let capacity: Int
    public let ttl: TimeInterval
    private let now: @Sendable () -> Date
    private let state = Mutex(State())

    public init(capacity: Int = 4096, ttl: TimeInterval = 300, now: @escaping @Sendable () -> Date = { Date() }) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.ttl = ttl
        self.now = now
    }

    public var statistics: Statistics { state.withLock { state in
        var statistics = state.statistics
        statistics.entries = state.entries.count
        return statistics
    } }

    /// The cached plaintext of `blob` under `context`, or the one `unwrap` returns (then cached).
    /// `keyID`, the key the caller names for the blob, is part of the entry: a stored key
    /// attribute naming another key is then refused as the key service refuses it, whether or
    /// not the same blob was unwrapped before.
    public func key(for blob: [UInt8], keyID: String? = nil, context: EncryptionContext,
                    unwrap: () throws(KMSClientError) -> SecretBytes) throws(KMSClientError) -> SecretBytes {
        let name = Self.name(blob, keyID, context)
        let time = now()
        let cached: SecretBytes? = state.withLock { state in
            state.clock += 1
            guard var entry = state.entries[name] else {
                state.statistics.misses += 1
                return nil
            }
            guard time.timeIntervalSince(entry.stored) < ttl else {
                state.entries[name] = nil
                state.statistics.evictions += 1
                state.statistics.misses += 1
                return nil
            }
            entry.lastUse = state.clock
            state.entries[name] = entry
            state.statistics.hits += 1
            return entry.key
        }
        if let cached { return cached }
        let key = try unwrap()
        insert(key, name: name, time: time)
        return key
    }

    /// Puts a key in the cache directly (a file just created with a pooled key).
    public func insert(_ key: SecretBytes, for blob: [UInt8], keyID: String? = nil, context: EncryptionContext) {
        insert(key, name: Self.name(blob, keyID, context), time: now())
    }

    /// Drops every entry (on unmount, or when the service says a key changed state).
    public func removeAll() {
        state.withLock { state in
            state.statistics.evictions += state.entries.count
            state.entries.removeAll()
        }
    }

    private func insert(_ key: SecretBytes, name: [UInt8], time: Date) {
        state.withLock { state in
            state.clock += 1
            if state.entries[name] == nil, state.entries.count >= capacity,
               let oldest = state.entries.min(by: { $0.value.lastUse < $1.value.lastUse })?.key {
                state.entries[oldest] = nil
                state.statistics.evictions += 1
            }
            state.entries[name] = Entry(key: key, stored: time, lastUse: state.clock)
        }
    }

    static func name(_ blob: [UInt8], _ keyID: String?, _ context: EncryptionContext) -> [UInt8] {
        // Length-prefixed: no blob, key ID and context run into another's.
        var bytes: [UInt8] = []
        for part in [blob, Array((keyID ?? "").utf8), context.canonicalEncoding] {
            let count = UInt32(truncatingIfNeeded: part.count)
            bytes += [UInt8(count >> 24), UInt8(count >> 16 & 0xff), UInt8(count >> 8 & 0xff), UInt8(count & 0xff)] + part
        }
        return SHA256.hash(bytes)
    }
}
