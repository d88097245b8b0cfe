import Dispatch
import Foundation
import Synchronization

/// The engine's door to peer deployments: other kmsd services, each with its own store, that
/// hold copies of multi-Region keys in their Regions (docs/KMS.md, "Multi-Region keys across
/// deployments"). The engine decides what to send and what to accept; the transport (mutually
/// authenticated TLS, in `KMSPeers`) only carries bytes and names who sent them.
public protocol ReplicaPeers: Sendable {
    /// The peer deployment that serves `region`; nil when none does.
    func peer(serving region: String) -> String?
    /// Whether this deployment serves `region`: a peer makes replicas only there.
    func serves(_ region: String) -> Bool
    /// Delivers one message to `peer`; returns once the peer has applied it.
    func deliver(_ message: [UInt8], to peer: String) throws(PeerFailure)
}

/// A message a peer did not take: unreachable, or refused (then with the peer's error name).
public struct PeerFailure: Error, CustomStringConvertible {
    public let description: String
    /// The AWS error name the peer answered with, if it answered.
    public let code: String?
    public init(_ description: String, code: String? = nil) {
        self.description = description
        self.code = code
    }
}

/// What ReplicateKey asked of a replica in a peer's Region, kept on the primary until the peer
/// has made it (the replica is Creating until then).
struct PeerReplicaRequest: Codable, Sendable, Equatable {
    var description: String
    var policy: String
    var tags: [Tag]
}

/// The peers an engine replicates with, and the timer that sends what they have not acknowledged.
final class PeerLink: Sendable {
    private let peers = Mutex<(any ReplicaPeers)?>(nil)
    /// Where rounds run, one at a time: the timer's and those a change asks for at once.
    let queue = DispatchQueue(label: "kmsd.peers")
    /// A round asked for and not started yet: a burst of changes asks for one, not one each.
    let roundAsked = Atomic<Bool>(false)
    /// A dispatch source is thread-safe to cancel; the lock hands it over.
    private struct Timer: @unchecked Sendable { let source: DispatchSourceTimer }
    private let timer = Mutex<Timer?>(nil)

    /// The peers whose last message failed, and who is told when a peer starts failing and when
    /// it recovers (once each: not every round, nor every time the reason changes).
    private let failing = Mutex<Set<String>>([])
    private let observer = Mutex<(@Sendable (String, String?) -> Void)?>(nil)
    /// What failed and may not be tried again before a time (uptime nanoseconds): a peer that
    /// does not answer, or one key's message a peer refuses. Automatic rounds only.
    private let backoff = Mutex<[String: (failures: Int, notBefore: UInt64)]>([:])
    private let interval = Mutex<Duration?>(nil)
    /// The longest wait between two tries of a refused message, and of a peer that does not
    /// answer (shorter: it is usually back soon, and its messages wait for it).
    static let maximumBackoff = Duration.seconds(300)
    static let maximumPeerBackoff = Duration.seconds(60)

    var current: (any ReplicaPeers)? { peers.withLock { $0 } }
    /// Whether rounds run by themselves (a timer); otherwise only when asked (tests).
    var automatic: Bool { timer.withLock { $0 != nil } }

    func observe(_ handler: @escaping @Sendable (String, String?) -> Void) { observer.withLock { $0 = handler } }

    func report(_ peer: String, problem: String?) {
        let changed = failing.withLock { failing in
            problem == nil ? failing.remove(peer) != nil : failing.insert(peer).inserted
        }
        if changed, let handler = observer.withLock({ $0 }) { handler(peer, problem) }
    }

    /// Whether `what` may be tried now.
    func mayTry(_ what: String) -> Bool {
        let now = DispatchTime.now().uptimeNanoseconds
        return backoff.withLock { ($0[what]?.notBefore ?? 0) <= now }
    }

    /// `what` failed: the next try waits twice as long as the last wait (the round interval
    /// first), up to `maximum`.
    func failed(_ what: String, maximum: Duration = PeerLink.maximumBackoff) {
        guard let interval = interval.withLock({ $0 }) else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        func nanoseconds(_ duration: Duration) -> UInt64 {
            UInt64(duration.components.seconds) * 1_000_000_000 + UInt64(duration.components.attoseconds / 1_000_000_000)
        }
        backoff.withLock { entries in
            // Entries long past their time are for messages that have changed since: dropped.
            if entries.count > 1000 { entries = entries.filter { $0.value.notBefore + nanoseconds(Self.maximumBackoff) > now } }
            let failures = (entries[what]?.failures ?? 0) + 1
            let wait = min(interval * (1 << min(failures - 1, 20)), maximum)
            entries[what] = (failures, now + nanoseconds(wait))
        }
    }

    func succeeded(_ what: String) { _ = backoff.withLock { $0.removeValue(forKey: what) } }

    func connect(_ peers: any ReplicaPeers, timer: DispatchSourceTimer?, interval: Duration?) {
        self.peers.withLock { $0 = peers }
        self.interval.withLock { $0 = timer == nil ? nil : interval }
        let next = timer.map(Timer.init)
        self.timer.withLock { $0?.source.cancel(); $0 = next }
    }

    func stop() { timer.withLock { $0?.source.cancel(); $0 = nil } }
}

extension KMSEngine {
    /// Replicates multi-Region keys with `peers`: every `interval` (nil: never; tests call
    /// ``synchronizePeers()``) sends each peer what it has not acknowledged. Also makes this
    /// engine accept peers' messages (``receivePeerMessage(_:from:)``) as `peers` names them.
    public func connectPeers(_ peers: any ReplicaPeers, every interval: Duration? = .seconds(1)) {
        let timer = interval.map { Self.repeatingTimer(on: peerLink.queue, every: $0) { [weak self] in _ = self?.synchronizePeers() } }
        peerLink.connect(peers, timer: timer, interval: interval)
    }

    /// After a change that peers lack (a replica asked for, a rotation, a change of primary): a
    /// round now, rather than at the next tick, so that the peer has it in about a round trip.
    func nudgePeers(after changes: [StoreChange]) {
        guard peerLink.automatic, changes.contains(where: { if case let .putKey(record) = $0 { return record.speaksToPeers }; return false }) else { return }
        guard !peerLink.roundAsked.exchange(true, ordering: .acquiringAndReleasing) else { return }
        peerLink.queue.async { [weak self] in
            // Cleared before the round: a change made during it asks for another.
            self?.peerLink.roundAsked.store(false, ordering: .releasing)
            _ = self?.synchronizePeers()
        }
    }

    /// Calls `handler` with a peer's name and its problem when messages to it start failing
    /// (with the reason) and when they go through again (nil).
    public func onPeerProblem(_ handler: @escaping @Sendable (_ peer: String, _ problem: String?) -> Void) {
        peerLink.observe(handler)
    }
}
