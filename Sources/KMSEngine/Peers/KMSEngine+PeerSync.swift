import Foundation
import KMSFSCrypto
import KMSVocabulary

/// The sending side of replication between deployments: what each peer has not acknowledged is
/// sent again until it is, so a peer that was down, a lost answer or a crash between a change and
/// its delivery only delays it. Nothing is queued: what a peer lacks is read off the records
/// (``KeyRecord/peerSynced`` against the shared state's fingerprint), so the store's own
/// transactions make the "outbox" durable.
extension KMSEngine {
    /// Sends each peer what it lacks: the shared state of every key whose copy here speaks for it
    /// (``KeyRecord/speaksToPeers``), with the replicas asked of it; then the deletion of due
    /// replicas to every deployment holding a copy, and deletes them once all have been told.
    /// - Returns: messages delivered and messages that failed (each is tried again next time).
    @discardableResult
    public func synchronizePeers() -> (delivered: Int, failed: Int) {
        guard let peers = peerLink.current else { return (0, 0) }
        let snapshot = state.withLock { $0 }
        var delivered = 0, failed = 0
        /// Peers that did not answer this round: not tried again in it (one deadline per round,
        /// not one per key), and not before their backoff.
        var unreachable: Set<String> = []
        /// Whether a message about `subject` may go to `peer` now.
        func mayTry(_ peer: String, _ subject: String) -> Bool {
            !unreachable.contains(peer) && peerLink.mayTry("peer " + peer) && peerLink.mayTry(subject)
        }
        func count(_ peer: String, _ subject: String, _ error: (any Error)?) {
            if error == nil { delivered += 1 } else { failed += 1 }
            EngineMetrics.peerMessage(delivered: error == nil)
            peerLink.report(peer, problem: error.map { "\($0)" })
            guard let error else {
                peerLink.succeeded("peer " + peer)
                peerLink.succeeded(subject)
                return
            }
            if let failure = error as? PeerFailure, failure.code == nil {
                unreachable.insert(peer)
                peerLink.failed("peer " + peer, maximum: PeerLink.maximumPeerBackoff)
            } else {
                peerLink.failed(subject)  // refused (or not recorded here): this message waits, the others go on
            }
        }
        for live in snapshot.keys.values where live.record.speaksToPeers {
            let record = live.record
            let regions = copyRegions(of: record, in: snapshot)
            let fingerprint = Self.sharedFingerprint(record, regions: regions)
            var lacking: [String: [String]] = [:]
            for region in record.peerRegions ?? [] where record.peerSynced?[region] != fingerprint || record.peerReplicaRequests?[region] != nil {
                guard let peer = peers.peer(serving: region) else {
                    // A copy in a Region no peer of this deployment serves: owed, and it stays owed
                    // (kmsd_peer_backlog) until the deployments holding the key are all peers.
                    failed += 1
                    continue
                }
                lacking[peer, default: []].append(region)
            }
            for (peer, peerRegions) in lacking.sorted(by: { $0.key < $1.key }) {
                // A key changed since is a new message, not the refused one: no wait carried over.
                let subject = "\(peer) \(record.identity.materialLabel) \(fingerprint)"
                guard mayTry(peer, subject) else {
                    failed += 1
                    continue
                }
                let asked = (record.peerReplicaRequests ?? [:]).filter { peerRegions.contains($0.key) }
                do {
                    let shared = PeerMessage.SharedKeyState(
                        record: Self.sharedPart(of: record), regions: regions, material: try live.material.mapValues { try $0.storedBytes() },
                        replicas: asked)
                    try deliver(.syncKey(shared), to: peer, peers)
                    try acknowledge(peer, regions: peerRegions, of: record.identity, fingerprint: fingerprint)
                    count(peer, subject, nil)
                } catch let refusal as PeerFailure where !asked.isEmpty && refusal.code.map(Self.finalRefusals.contains) == true {
                    count(peer, subject, refusal)
                    try? abandon(Array(asked.keys), of: record.identity, refusedBy: peer, refusal)
                } catch {
                    count(peer, subject, error)
                }
            }
        }
        let now = clock.now()
        for live in snapshot.keys.values where live.record.state == .pendingDeletion && (live.record.deletionDate ?? .distantFuture) <= now {
            let told = peersHolding(live.record, peers)
            guard !told.isEmpty else { continue }
            var all = true
            for peer in told {
                let subject = "\(peer) deleted \(live.record.identity.materialLabel)"
                guard mayTry(peer, subject) else {
                    failed += 1
                    all = false
                    continue
                }
                do {
                    try deliver(.replicaDeleted(account: live.record.account, keyID: live.record.keyID, region: live.record.region), to: peer, peers)
                    count(peer, subject, nil)
                } catch {
                    count(peer, subject, error)
                    all = false
                }
            }
            if all { _ = try? carryOut(live.record, now: now, peersTold: true) }
        }
        EngineMetrics.peerBacklog.record(failed)
        return (delivered, failed)
    }

    /// A peer's refusals that sending the same replicas again cannot change: the request itself
    /// is wrong there (a Region it does not serve, an account it does not have, a policy it takes
    /// as malformed). Not AccessDenied: during a change of primary it passes.
    static let finalRefusals: Set<String> = [
        AWSErrorCode.validation.rawValue, AWSErrorCode.notFound.rawValue, AWSErrorCode.malformedPolicyDocument.rawValue,
    ]

    /// Replicas a peer refused for good: no longer Creating, no longer listed (ReplicateKey may be
    /// called again once the peer can make them); the refusal is in the audit record.
    private func abandon(_ regions: [String], of identity: KeyIdentity, refusedBy peer: String, _ refusal: PeerFailure) throws {
        let caller = Caller(account: identity.account, region: identity.region, principal: "kms.amazonaws.com", requestID: "replication")
        do {
            try manage("SynchronizeMultiRegionKey", caller) { record, state in
                guard let primary = state.keys[identity] else { throw NothingToRecord() }
                let dropped = regions.filter { primary.record.peerReplicaRequests?[$0] != nil }
                guard !dropped.isEmpty else { throw NothingToRecord() }
                record.keyARN = primary.record.arn
                var changes: [StoreChange] = []
                for key in [primary] + relatedKeys(of: primary.record, in: state) {
                    let next = key.with { copy in
                        copy.peerRegions = copy.peerRegions?.filter { !dropped.contains($0) }
                        if copy.peerRegions?.isEmpty == true { copy.peerRegions = nil }
                        for region in dropped { copy.peerReplicaRequests?[region] = nil }
                        if copy.peerReplicaRequests?.isEmpty == true { copy.peerReplicaRequests = nil }
                    }
                    state.keys[next.record.identity] = next
                    changes.append(.putKey(next.record))
                }
                record.note = "peer \(peer) refused the replica in \(dropped.joined(separator: ", ")), which is not made: \(refusal.description)"
                return ((), changes)
            }
        } catch is NothingToRecord {}
    }

    private func deliver(_ message: PeerMessage, to peer: String, _ peers: any ReplicaPeers) throws {
        var bytes = try message.serialized
        defer { bytes.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        try peers.deliver(bytes, to: peer)
    }

    /// Records that `peer` has the shared state `fingerprint` for `regions`; nothing if the key
    /// changed since it was sent (it is sent again). A former primary in Updating returns to its
    /// state when the new primary has it, and stops speaking for the key when every peer has it.
    private func acknowledge(_ peer: String, regions: [String], of identity: KeyIdentity, fingerprint: String) throws {
        let caller = Caller(account: identity.account, region: identity.region, principal: "kms.amazonaws.com", requestID: "replication")
        do {
            try manage("SynchronizeMultiRegionKey", caller) { record, state in
                guard let live = state.keys[identity], live.record.speaksToPeers,
                      Self.sharedFingerprint(live.record, regions: copyRegions(of: live.record, in: state)) == fingerprint else { throw NothingToRecord() }
                record.keyARN = live.record.arn
                let next = live.with { key in
                    for region in regions {
                        key.peerSynced = (key.peerSynced ?? [:]).merging([region: fingerprint]) { $1 }
                        key.peerReplicaRequests?[region] = nil
                    }
                    if key.peerReplicaRequests?.isEmpty == true { key.peerReplicaRequests = nil }
                    if key.state == .updating, let after = key.stateAfterUpdate, let primary = key.primaryRegion, regions.contains(primary) {
                        key.state = after
                        key.stateAfterUpdate = nil
                    }
                    if key.handingOver == true, key.stateAfterUpdate == nil, (key.peerRegions ?? []).allSatisfy({ key.peerSynced?[$0] == fingerprint }) {
                        key.handingOver = nil
                        if key.primaryRegion != key.region { key.peerSynced = nil }
                    }
                }
                state.keys[identity] = next
                record.note = "peer \(peer) holds the shared state in \(regions.joined(separator: ", "))"
                return ((), [.putKey(next.record)])
            }
        } catch is NothingToRecord {}
    }

    /// The Region of every copy of the multi-Region key `record` is one of: here and at peers.
    func copyRegions(of record: KeyRecord, in state: EngineState) -> [String] {
        Set([record.region] + relatedKeys(of: record, in: state).map(\.record.region) + (record.peerRegions ?? [])).sorted()
    }

    /// The peers to tell before `record`, due for deletion, is deleted: every deployment that
    /// holds a copy of its key (the primary's among them). None for a single-Region key.
    func peersHolding(_ record: KeyRecord, _ peers: any ReplicaPeers) -> [String] {
        guard record.multiRegion else { return [] }
        let regions = (record.peerRegions ?? []) + (record.primaryRegion.map { [$0] } ?? [])
        return Set(regions.compactMap { peers.peer(serving: $0) }).sorted()
    }

    /// What the copies share, as a peer must have it: the key's identity, spec, usage, origin,
    /// versions, rotation settings and primary Region, and the Region of every copy.
    static func sharedFingerprint(_ record: KeyRecord, regions: [String]) -> String {
        struct Shared: Encodable {
            var keyID: String, account: String, spec: KeySpec, usage: KeyUsage, origin: Origin
            var primaryRegion: String?, primaryEpoch: Int?, regions: [String], versions: [KeyVersion]
            var rotationEnabled: Bool, rotationPeriodInDays: Int?, nextRotationDate: Date?
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let bytes = (try? encoder.encode(Shared(
            keyID: record.keyID, account: record.account, spec: record.spec, usage: record.usage, origin: record.origin,
            primaryRegion: record.primaryRegion, primaryEpoch: record.primaryEpoch, regions: regions, versions: record.versions, rotationEnabled: record.rotationEnabled,
            rotationPeriodInDays: record.rotationPeriodInDays, nextRotationDate: record.nextRotationDate))) ?? Data()
        return hex(SHA256.hash(Array(bytes)))
    }

    /// `record` as a peer is sent it: its Region's own fields (policy, tags, description,
    /// deletion) and this deployment's bookkeeping left out.
    static func sharedPart(of record: KeyRecord) -> KeyRecord {
        var shared = record
        shared.description = ""
        shared.policy = ""
        shared.tags = []
        shared.deletionDate = nil
        shared.pendingWindowInDays = nil
        shared.peerSynced = nil
        shared.peerReplicaRequests = nil
        shared.stateAfterUpdate = nil
        shared.handingOver = nil
        shared.formerPrimaryRegion = nil
        return shared
    }
}
