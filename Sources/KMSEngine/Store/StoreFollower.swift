import CoreMetrics
import Dispatch
import KMSStore
import Synchronization

/// How an instance serving a shared store (`kmsd serve --shared`) keeps up with the others.
///
/// Every instance holds the store's state in memory and answers cryptographic calls from it. A
/// change any instance commits moves the store's generation; each instance asks for it every
/// ``pollInterval`` and, when it moved, loads the store again (checking every record, as at
/// open). An instance that has not confirmed its state current for ``staleLimit`` — its store
/// slow, unreachable, or a load failing — refuses every request with KMSInternalException, which
/// clients take as a reason to try another instance. So a DisableKey or a deleted access key is
/// refused by every instance within ``staleLimit`` of its commit. Polling, not LISTEN/NOTIFY: a
/// notification still needs a query to arrive on a synchronous session, and the bound has to
/// hold when notifications are lost with a session anyway.
final class StoreFollower: Sendable {
    static let pollInterval = DispatchTimeInterval.milliseconds(100)
    /// The bound: docs/KMS.md, "Several instances serving one PostgreSQL store".
    static let staleLimit: UInt64 = 1_000_000_000
    /// How many times a management change is drafted optimistically before it holds the
    /// writers' turn while drafting (``KMSEngine/manage(_:_:_:)``).
    static let optimisticAttempts = 3

    /// When the state was last confirmed current: the moment the generation was asked for
    /// (DispatchTime nanoseconds), stored once the state caught up with the answer.
    private let confirmed = Atomic<UInt64>(DispatchTime.now().uptimeNanoseconds)
    /// `nonisolated(unsafe)`: set once, by ``start(following:)`` before the engine serves; a
    /// dispatch source is thread-safe to cancel.
    private nonisolated(unsafe) var timer: DispatchSourceTimer?
    static let age = CoreMetrics.Gauge(label: "kmsd_store_follow_age_seconds")
    static let reloads = CoreMetrics.Counter(label: "kmsd_store_reloads_total")
    static let failures = CoreMetrics.Counter(label: "kmsd_store_follow_failures_total")

    /// Told when following starts failing (with why) and when it recovers (nil); once per change.
    let reporter = Mutex<(@Sendable (String?) -> Void)?>(nil)

    /// The highest trail head seen in the store: it may only move forward.
    private let seenHead = Atomic<UInt64>(0)
    /// Set by ``stop()``; a run that starts after it does nothing.
    private let stopped = Atomic<Bool>(false)
    private let cancelled = DispatchSemaphore(value: 0)

    /// Starts asking; the engine is held weakly (the engine's release stops the timer).
    func start(following engine: KMSEngine) {
        let source = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "kmsd.store-follower"))
        source.schedule(deadline: .now() + Self.pollInterval, repeating: Self.pollInterval)
        // Only the timer's serial queue touches it.
        nonisolated(unsafe) var reported: String?
        source.setEventHandler { [weak engine, self] in
            guard let engine, !stopped.load(ordering: .acquiring) else { return }
            var problem: String?
            do {
                try engine.follow(holdingManagement: false)
            } catch {
                Self.failures.increment()
                problem = "\(error)"
            }
            if problem != reported {
                reported = problem
                reporter.withLock { $0 }?(problem)
            }
            Self.age.record(Double(DispatchTime.now().uptimeNanoseconds &- confirmed.load(ordering: .acquiring)) / 1e9)
        }
        source.setCancelHandler { [cancelled] in cancelled.signal() }
        timer = source
        source.resume()
    }

    /// Stops asking; with `wait`, waits for a run in progress to end (not from the engine's
    /// deinit, which may run on the timer's own queue when a run drops the last reference).
    func stop(wait: Bool = true) {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing), let timer else { return }
        timer.cancel()
        if wait { cancelled.wait() }
    }

    /// The least trail head the store may show from now on: what this instance has seen in it or
    /// written to it. Taken before the store is asked (an answer is as old as its question: a
    /// record written, or a head seen, while it was on its way is not held against it).
    func floor(written: Int64) -> Int64 { max(Int64(seenHead.load(ordering: .acquiring)), written) }

    /// Refuses a store whose trail is behind `floor`: records cut off the end, or an older copy
    /// of the store put back while this instance runs.
    func checkNotBehind(_ head: Int64, floor seen: Int64) throws {
        guard head >= seen else {
            throw StoreError("the store's audit trail ends at record \(head), before record \(seen) that this instance has seen: records were cut off or the store was rolled back")
        }
    }

    /// The state was current when the store was asked at `asked` (its trail then at `head`).
    func confirm(asked: UInt64, head: Int64) {
        Self.raise(seenHead, to: UInt64(max(0, head)))
        Self.raise(confirmed, to: asked)
    }

    /// Stores `value` unless the atomic holds a larger one already (two threads confirm at once).
    private static func raise(_ atomic: borrowing Atomic<UInt64>, to value: UInt64) {
        var current = atomic.load(ordering: .acquiring)
        while current < value {
            let (exchanged, original) = atomic.compareExchange(expected: current, desired: value, ordering: .acquiringAndReleasing)
            if exchanged { break }
            current = original
        }
    }

    /// Throws unless the state was confirmed current within ``staleLimit``.
    func checkFresh() throws(KMSError) {
        let last = confirmed.load(ordering: .acquiring)
        let now = DispatchTime.now().uptimeNanoseconds
        let age = now > last ? now - last : 0
        guard age > Self.staleLimit else { return }
        throw KMSError(.internalError, "this kmsd instance has not confirmed its key store's state for \(age / 1_000_000) ms "
                       + "(another instance may have changed it): try another instance")
    }
}
