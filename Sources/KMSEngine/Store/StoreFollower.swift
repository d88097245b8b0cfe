import CoreMetrics
import Dispatch
import Synchronization

/// How an instance serving a shared store (`kmsd serve --shared`) keeps up with the others.
///
/// Every instance holds the store's state in memory and answers cryptographic calls from it. A
/// change any instance commits moves the store's generation; each instance asks for it every
/// ``pollInterval`` and, when it moved, loads what changed: the rows the ``ChangeFeed`` names
/// (each checked as at open, and the digest of the whole set), or the whole store when the feed
/// cannot account for the change. An instance that has not confirmed its state current for ``staleLimit`` — its store
/// slow, unreachable, or a load failing — refuses every request with KMSInternalException, which
/// clients take as a reason to try another instance. So a DisableKey or a deleted access key is
/// refused by every instance within ``staleLimit`` of its commit. Polling, not LISTEN/NOTIFY: a
/// notification still needs a query to arrive on a synchronous session, and the bound has to
/// hold when notifications are lost with a session anyway.
final class StoreFollower: Sendable {
    static let pollNanoseconds: UInt64 = 100_000_000
    static let pollInterval = DispatchTimeInterval.nanoseconds(Int(pollNanoseconds))
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

    /// Set by ``stop()``; a run that starts after it does nothing.
    private let stopped = Atomic<Bool>(false)
    private let cancelled = DispatchSemaphore(value: 0)

    /// Starts asking; the engine is held weakly (the engine's release stops the timer).
    /// - Parameter anchor: this instance's audit anchor, moved along the trail the other
    ///   instances write (checked to chain on under the root key), every half second: otherwise
    ///   it would move only with this instance's own writes, and after a restart accept an older
    ///   copy of the store put back since.
    func start(following engine: KMSEngine, anchor: AnchorFollower? = nil) {
        let source = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "kmsd.store-follower"))
        source.schedule(deadline: .now() + Self.pollInterval, repeating: Self.pollInterval)
        // Only the timer's serial queue touches it.
        nonisolated(unsafe) var reported: String?
        source.setEventHandler { [weak engine, self] in
            guard let engine, !stopped.load(ordering: .acquiring) else { return }
            var problem: String?
            do {
                try engine.follow()
                anchor?.followIfDue()
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

    /// Set when the store's root key was rotated to a key this instance was not given: every
    /// request is refused from then on.
    private let retired = Atomic<Bool>(false)

    func retire() { retired.store(true, ordering: .releasing) }

    /// Until when requests are refused because another instance announced a rotation of the root
    /// key to a key this instance was not given (DispatchTime nanoseconds; 0: none): its audit
    /// records could not be chained after the rotation, so it stops making them first.
    private let pausedUntil = Atomic<UInt64>(0)

    /// Pauses for an announced rotation, for `seconds` from now (this instance's own clock); a
    /// pause under way is never shortened (a rewritten announcement cannot end it early).
    func pauseForRotation(seconds: Double) {
        Self.raise(pausedUntil, to: DispatchTime.now().uptimeNanoseconds + UInt64(max(0, seconds) * 1e9))
    }

    /// Moves `atomic` up to `value`, never down (two threads may move it at once).
    private static func raise(_ atomic: borrowing Atomic<UInt64>, to value: UInt64) {
        var current = atomic.load(ordering: .acquiring)
        while current < value {
            let (exchanged, original) = atomic.compareExchange(expected: current, desired: value, ordering: .acquiringAndReleasing)
            if exchanged { break }
            current = original
        }
    }

    /// Ends a pause: the announcement is gone.
    func endRotationPause() { pausedUntil.store(0, ordering: .releasing) }

    /// The state was current when the store was asked at `asked`. Kept if a later confirmation
    /// is there already (two threads confirm at once).
    func confirm(asked: UInt64) { Self.raise(confirmed, to: asked) }

    /// Throws unless the state was confirmed current within ``staleLimit``.
    func checkFresh() throws(KMSError) {
        guard !retired.load(ordering: .relaxed) else {
            throw KMSError(.internalError, "the key store's root key was rotated to a key this kmsd instance was not given: try another instance")
        }
        let now = DispatchTime.now().uptimeNanoseconds
        guard pausedUntil.load(ordering: .relaxed) <= now else {
            throw KMSError(.internalError, "the key store's root key is being rotated to a key this kmsd instance was not given: try another instance")
        }
        let last = confirmed.load(ordering: .acquiring)
        let age = now > last ? now - last : 0
        guard age > Self.staleLimit else { return }
        throw KMSError(.internalError, "this kmsd instance has not confirmed its key store's state for \(age / 1_000_000) ms "
                       + "(another instance may have changed it): try another instance")
    }
}
