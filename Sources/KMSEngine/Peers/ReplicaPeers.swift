import Dispatch
import Foundation
import Synchronization

/// The engine's door to peer deployments: other kmsd services, each with its own store, that
/// hold copies of multi-Region keys in their Regions (docs/KMS.md, "Multi-Region keys across
/// deployments"). The engine decides what to send and what to accept; the transport (mutually
/// authenticated TLS, in `KMSPeers`) only carries bytes and names who sent them.
public protocol ReplicaPeers: Sendable {
    /// The peer deployment that serves `region`; nil when this deployment does.
    func peer(serving region: String) -> String?
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

    /// Each peer's last problem (absent: the last message went through), and who is told when
    /// that changes: a peer that stays down is reported once, not every round.
    private let problems = Mutex<[String: String]>([:])
    private let observer = Mutex<(@Sendable (String, String?) -> Void)?>(nil)

    var current: (any ReplicaPeers)? { peers.withLock { $0 } }
    /// Whether rounds run by themselves (a timer); otherwise only when asked (tests).
    var automatic: Bool { timer.withLock { $0 != nil } }

    func observe(_ handler: @escaping @Sendable (String, String?) -> Void) { observer.withLock { $0 = handler } }

    func report(_ peer: String, problem: String?) {
        let changed = problems.withLock { problems in
            guard problems[peer] != problem else { return false }
            problems[peer] = problem
            return true
        }
        if changed, let handler = observer.withLock({ $0 }) { handler(peer, problem) }
    }

    func connect(_ peers: any ReplicaPeers, timer: DispatchSourceTimer?) {
        self.peers.withLock { $0 = peers }
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
        peerLink.connect(peers, timer: timer)
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
