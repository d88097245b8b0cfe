import Dispatch
import Foundation
import KMSVocabulary
import KMSFSCrypto
import Synchronization

/// Data keys generated ahead of need, so that creating a file does not wait for the key service.
///
/// Each pooled key comes with the random file ID it was made for and the encryption context that
/// names it, because the context is bound into the wrapped key and cannot be chosen later. Keys are
/// made in the background whenever the pool falls below ``lowWater``, by up to ``concurrency``
/// workers, and handed out exactly once. In memory only; ``shutdown()`` (or release) drops them,
/// and each wipes itself.
///
/// A pooled key was generated while its KMS key was usable; handing it out later must not
/// outlive a decision to stop using the key (DisableKey, ScheduleKeyDeletion, a revoked
/// grant) for long. So, like the AWS Encryption SDK's data-key cache, keys expire after
/// ``maximumAge``; and the first refill that the service refuses for the key's state or the
/// caller's rights drops every ready key, so that the next file's creation asks the service
/// and gets its refusal.
public final class KeyPool: Sendable {
    /// A data key for one new file.
    public struct PooledKey: Sendable {
        public var fileID: [UInt8]
        public var context: EncryptionContext
        public var dataKey: DataKey
        /// When the service made it.
        public var generated: Date
    }

    private struct State {
        var keys: [PooledKey] = []
        var refilling = 0
        var stopped = false
        var lastError: KMSClientError?
        var generated = 0
        var served = 0
        var servedWithoutWaiting = 0
        var expired = 0
        var drained = 0
        /// After a transient failure, the wait before the pool tries again (doubling to 8 s).
        var retryDelay: TimeInterval = 0
    }

    public let size: Int
    public let lowWater: Int
    public let concurrency: Int
    /// Ready keys older than this are dropped rather than handed out.
    public let maximumAge: TimeInterval
    private let now: @Sendable () -> Date
    private let client: any KMSClient
    /// The KMS key the pooled data keys are wrapped under.
    public let keyID: String
    private let contextFor: @Sendable ([UInt8]) -> EncryptionContext
    private let state = Mutex(State())
    /// Retries after a failure are scheduled here; the refills themselves run on threads of
    /// their own (``startWorker()``).
    private let queue = DispatchQueue(label: "kmsfs.keypool")

    /// - Parameters:
    ///   - contextFor: the encryption context of a new file with this 16-byte file ID.
    ///   - size: keys kept ready; `lowWater`: refill below this; `concurrency`: parallel refills.
    ///   - maximumAge: how long a ready key may wait to be handed out.
    public init(client: any KMSClient, keyID: String, size: Int = 64, lowWater: Int = 16, concurrency: Int = 2,
                maximumAge: TimeInterval = 30, now: @escaping @Sendable () -> Date = { Date() },
                contextFor: @escaping @Sendable ([UInt8]) -> EncryptionContext) {
        precondition(size > 0 && lowWater >= 0 && lowWater <= size && concurrency > 0 && maximumAge > 0)
        self.maximumAge = maximumAge
        self.now = now
        self.client = client
        self.keyID = keyID
        self.size = size
        self.lowWater = lowWater
        self.concurrency = concurrency
        self.contextFor = contextFor
        refillIfNeeded()
    }

    deinit { shutdown() }

    /// Counters: keys generated, served, served straight from the pool, ready now, dropped
    /// for age, and dropped because the service refused a refill.
    public var statistics: (generated: Int, served: Int, servedWithoutWaiting: Int, ready: Int, expired: Int, drained: Int) {
        state.withLock { ($0.generated, $0.served, $0.servedWithoutWaiting, $0.keys.count, $0.expired, $0.drained) }
    }

    /// A key for a new file: from the pool if one is ready (and young enough), otherwise made now.
    public func take() throws(KMSClientError) -> PooledKey {
        let oldest = now().addingTimeInterval(-maximumAge)
        let ready: PooledKey? = state.withLock { state in
            state.served += 1
            // Oldest first in the array: drop the expired prefix, serve the newest.
            if let firstYoung = state.keys.firstIndex(where: { $0.generated >= oldest }) {
                state.expired += firstYoung
                state.keys.removeFirst(firstYoung)
            } else {
                state.expired += state.keys.count
                state.keys.removeAll()
            }
            guard !state.keys.isEmpty else { return nil }
            state.servedWithoutWaiting += 1
            return state.keys.removeLast()
        }
        refillIfNeeded()
        if let ready { return ready }
        return try make()
    }

    /// Stops refilling and drops the ready keys (they wipe themselves).
    public func shutdown() {
        state.withLock { state in
            state.stopped = true
            state.keys.removeAll()
        }
    }

    private func make() throws(KMSClientError) -> PooledKey {
        let fileID: [UInt8]
        do {
            fileID = try SecureRandom.bytes(count: 16)
        } catch {
            throw KMSClientError(.unreachable, message: "no random bytes for a file ID: \(error)")
        }
        let context = contextFor(fileID)
        let dataKey = try client.generateDataKey(keyID: keyID, context: context)
        state.withLock { $0.generated += 1 }
        return PooledKey(fileID: fileID, context: context, dataKey: dataKey, generated: now())
    }

    /// Starts background workers while the pool (with what is being made) is below the low-water
    /// mark; each fills up to `size`. A failure stops that worker (the next `take` tries again);
    /// a refusal for the key's state or the caller's rights also drops the ready keys.
    private func refillIfNeeded(resuming: Bool = false) {
        let workers: Int = state.withLock { state in
            // A retry after a failure fills up to `size` whatever the level: the failure stopped a
            // worker that was doing so.
            let low = state.keys.count < lowWater || (state.keys.isEmpty && size > 0) || (resuming && state.keys.count < size)
            guard !state.stopped, low else { return 0 }
            let start = max(0, concurrency - state.refilling)
            state.refilling += start
            return start
        }
        for _ in 0..<workers {
            startWorker()
        }
    }

    /// A refill waits on the key service (a connect timeout, retries): it runs on a thread of its
    /// own, not on Dispatch's shared pool, whose few threads (one per core) also run the chunk
    /// crypto of every open file — a slow service must not take them.
    private func startWorker() {
        let worker = Thread { [weak self] in self?.refill() }
        worker.name = "kmsfs key pool"
        worker.start()
    }

    /// The most recent failure of a refill, if any (diagnostics).
    public var lastError: KMSClientError? { state.withLock { $0.lastError } }

    private func refill() {
        defer { state.withLock { $0.refilling -= 1 } }
        while true {
            let needed = state.withLock { !$0.stopped && $0.keys.count + $0.refilling - 1 < size }
            guard needed else { return }
            do {
                let key = try make()
                let kept = state.withLock { state -> Bool in
                    guard !state.stopped, state.keys.count < size else { return false }
                    state.keys.append(key)
                    return true
                }
                if !kept { return }
                state.withLock { $0.retryDelay = 0 }
            } catch {
                let retry: TimeInterval? = state.withLock { state in
                    state.lastError = error
                    switch error.kind {
                    case .keyUnusable, .accessDenied, .notFound:
                        state.drained += state.keys.count
                        state.keys.removeAll()
                        return nil  // the next take asks the service again
                    case .unreachable, .invalidCiphertext, .invalidRequest:
                        // The keys are as good as before; a passing failure must not leave the
                        // pool short until the next take, so try again later, backing off.
                        state.retryDelay = min(8, max(0.25, state.retryDelay * 2))
                        return state.retryDelay
                    }
                }
                if let retry {
                    queue.asyncAfter(deadline: .now() + retry) { [weak self] in self?.refillIfNeeded(resuming: true) }
                }
                return
            }
        }
    }
}
