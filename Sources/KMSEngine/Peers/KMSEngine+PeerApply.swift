import Foundation
import KMSFSCrypto

/// The receiving side of replication between deployments. A peer is trusted with the Regions it
/// serves, and with nothing else: it speaks for a multi-Region key only while it holds the key's
/// primary (as this deployment's copies know it), it makes replicas only in this deployment's
/// Regions and accounts, it reports deletions only of its own copies, and it can neither change
/// the material of a version a copy here has nor touch any other key or any field a Region keeps
/// for itself. Each message is one management transaction, audited with the peer as the principal.
extension KMSEngine {
    /// Applies one message from `peer`, the name its certificate proved (the transport's part).
    /// - Throws: ``KMSError`` with the reason a message is refused; it changes nothing.
    public func receivePeerMessage(_ body: [UInt8], from peer: String) throws {
        guard let peers = peerLink.current else { throw KMSError(.accessDenied, "this deployment replicates with no peer deployments") }
        let message: PeerMessage
        do { message = try PeerMessage(parsing: body) } catch { throw KMSError(.validation, "malformed peer message: \(error)") }
        switch message {
        case let .syncKey(shared): try apply(shared, from: peer, peers)
        case let .replicaDeleted(account, keyID, region): try applyDeletion(account: account, keyID: keyID, region: region, from: peer, peers)
        }
        // The peer is up: what waits for it need not wait out its backoff.
        peerLink.succeeded("peer " + peer)
    }

    private static func peerCaller(_ peer: String, account: String, region: String) -> Caller {
        Caller(account: account, region: region, principal: "kmsd-peer:\(peer)", requestID: UUID().uuidString.lowercased())
    }

    /// The shared state of a key from the peer that speaks for it: the copies here take it (new
    /// versions sealed under this store's root key), and the replicas it asks for are made.
    private func apply(_ shared: PeerMessage.SharedKeyState, from peer: String, _ peers: any ReplicaPeers) throws {
        let sent = try Self.sharedFields(of: shared)
        let material = try Self.checkMaterial(shared, of: sent)
        try manage("SynchronizeMultiRegionKey", Self.peerCaller(peer, account: sent.account, region: shared.record.region)) { record, state in
            let local = state.keys.all(sent.keyID).filter { $0.record.account == sent.account }
            record.keyARN = local.first?.record.arn ?? ARN.key(sent.keyID, account: sent.account, region: shared.record.region)
            let sentVersions = Set(sent.versions.map(\.version))
            /// Whether `copy` has every version sent, with the same material.
            func holdsEverySentVersion(_ copy: LiveKey) throws -> Bool {
                try sentVersions.allSatisfy { version in
                    guard let ours = copy.material[version], let theirs = material[version] else { return false }
                    return try ours.storedBytes() == theirs.storedBytes()
                }
            }
            let sentEpoch = sent.primaryEpoch ?? 0
            if let held = local.first {
                let epoch = local.map { $0.record.primaryEpoch ?? 0 }.max() ?? 0
                // From before a change of primary the copies here have heard of (a former
                // primary's message sent again, or late): stale. Refused, not acknowledged — its
                // sender learns the newer state from the primary, which ends its own handover.
                guard sentEpoch >= epoch else {
                    throw KMSError(.invalidState, "stale message from peer \(peer): primary epoch \(sentEpoch) < \(epoch) here")
                }
                // A state the copies here already have (a message sent again because its answer
                // was lost, as when the primary was handed to this deployment): nothing to do,
                // and said so, whoever speaks for the key now.
                let repeated = try local.allSatisfy { copy in
                    try sameSharedState(copy, sent, regions: shared.regions, in: state) && (try holdsEverySentVersion(copy))
                }
                if shared.replicas.isEmpty, repeated {
                    record.note = "from peer \(peer): nothing new"
                    return ((), [])
                }
                // The copies here name the primary; only its deployment speaks for the key (a
                // former primary's change of primary reaches them before the new one's messages).
                // Unless that primary's copy is gone (its deployment said so): then the former
                // primary that handed it over may take it back, at the next epoch (a handover
                // undone when its target was deleted).
                let primaryGone = held.record.primaryRegion.map { !copyRegions(of: held.record, in: state).contains($0) } ?? true
                let takesOver = primaryGone && sentEpoch == epoch + 1 && held.record.formerPrimaryRegion != nil
                    && sent.primaryRegion == held.record.formerPrimaryRegion && peers.peer(serving: held.record.formerPrimaryRegion ?? "") == peer
                guard let primary = held.record.primaryRegion, peers.peer(serving: primary) == peer || takesOver else {
                    throw KMSError(.accessDenied, "peer \(peer) does not hold the primary key of \(sent.keyID) (its primary Region here is \(held.record.primaryRegion ?? "none"))")
                }
                // A change of primary is a new epoch (a new epoch without one is a change undone,
                // or several this deployment missed).
                guard sentEpoch > epoch || sent.primaryRegion == primary else {
                    throw KMSError(.validation, "peer \(peer) moves the primary of \(sent.keyID) without a new primary epoch")
                }
            } else {
                guard peers.peer(serving: sent.primaryRegion ?? "") == peer else {
                    throw KMSError(.accessDenied, "peer \(peer) does not serve \(sent.primaryRegion ?? "the primary Region"), the primary Region of \(sent.keyID)")
                }
                guard !shared.replicas.isEmpty else { throw KMSError(.notFound, "this deployment holds no copy of \(sent.keyID)") }
            }
            for copy in local {
                guard copy.record.multiRegion, copy.record.spec == sent.spec, copy.record.usage == sent.usage, copy.record.origin == sent.origin else {
                    throw KMSError(.validation, "\(copy.record.arn) is not the key peer \(peer) describes: spec, usage or origin differ")
                }
                for (version, theirs) in material {
                    guard let ours = copy.material[version] else { continue }
                    guard try ours.storedBytes() == theirs.storedBytes() else {
                        throw KMSError(.validation, "\(copy.record.arn) version \(version) has other material than peer \(peer) sends: refused")
                    }
                }
            }
            for copy in local where !Set(copy.record.versions.map(\.version)).isSubset(of: sentVersions) {
                throw KMSError(.invalidState, "\(copy.record.arn) has versions the message lacks: it is older than this copy")
            }
            var changes: [StoreChange] = []
            /// The versions as this deployment describes them: each material's ID is keyed by the
            /// store's root key (``materialFingerprint``), so a copy here has its own.
            func identified(_ record: KeyRecord, _ material: [UInt32: KeyMaterial]) throws -> KeyRecord {
                var record = record
                for index in record.versions.indices { record.versions[index].materialID = nil }
                try Self.identifyMaterial(&record, material, fingerprintKey: keys.withLock { $0.fingerprint })
                return record
            }
            func put(_ key: LiveKey, sealing versions: some Sequence<UInt32>) throws {
                state.keys[key.record.identity] = key
                changes.append(.putKey(key.record))
                for version in versions {
                    guard let backing = key.material[version] else { continue }
                    changes.append(.putMaterial(key.record.identity, version: version,
                                                sealed: try rootKey.seal(backing.storedBytes(), label: key.record.identity.materialLabel, version: version)))
                }
            }
            // Every copy here, and the ones this message makes, is a Region here; the rest are
            // held elsewhere (by a peer, or by a deployment only the peers know).
            let here = Set(local.map(\.record.region)).union(shared.replicas.keys)
            let peerRegions = shared.regions.filter { !here.contains($0) }.sorted()
            guard let newPrimary = sent.primaryRegion, here.contains(newPrimary) || peers.peer(serving: newPrimary) != nil else {
                throw KMSError(.validation, "\(sent.primaryRegion ?? "no Region") is neither a Region with a copy here nor a peer's: it cannot be the primary")
            }
            var made: [String] = []
            for (region, request) in shared.replicas.sorted(by: { $0.key < $1.key }) {
                guard peers.serves(region) else {
                    throw KMSError(.validation, "this deployment does not serve \(region): no replica is made there")
                }
                guard state.accounts[sent.account] != nil else {
                    throw KMSError(.notFound, "this deployment has no account \(sent.account)")
                }
                let identity = KeyIdentity(account: sent.account, region: region, keyID: sent.keyID)
                guard state.keys[identity] == nil else { continue }  // made by an earlier delivery of this request
                var copy = sent
                copy.region = region
                copy.description = request.description
                copy.policy = request.policy
                copy.tags = request.tags
                copy.creationDate = clock.now()
                copy.peerRegions = peerRegions.isEmpty ? nil : peerRegions
                let replica = LiveKey(record: try identified(copy, material), material: material, policy: try KeyPolicies.parsed(request.policy))
                // The account must be able to manage its new key: a policy that shuts out its
                // root (and so every identity) is refused here too, whoever sent it.
                let root = Caller(account: sent.account, region: region, requestID: record.requestID)
                guard decide(.putKeyPolicy, root, target: .key(replica, grants: nil), in: state).allowed else {
                    throw KMSError(.malformedPolicyDocument, "the replica's key policy would not let account \(sent.account) update it")
                }
                try put(replica, sealing: material.keys.sorted())
                made.append(region)
            }
            for copy in local {
                var next = copy.record
                next.versions = sent.versions
                next.rotationEnabled = sent.rotationEnabled
                next.rotationPeriodInDays = sent.rotationPeriodInDays
                next.nextRotationDate = sent.nextRotationDate
                next.primaryRegion = sent.primaryRegion
                next.primaryEpoch = sentEpoch == 0 ? nil : sentEpoch
                next.peerRegions = peerRegions.isEmpty ? nil : peerRegions
                if sentEpoch > (copy.record.primaryEpoch ?? 0) {
                    // The one that may take the primary back if its target's copy goes.
                    next.formerPrimaryRegion = copy.record.primaryRegion
                    // A newer change of primary: the handover this copy was making has reached
                    // its target (Updating ends). A copy still handing over goes on telling the
                    // peers that have not acknowledged it — now the newer state — since they
                    // still take only its word.
                    if next.state == .updating { next.state = next.stateAfterUpdate ?? .enabled }
                    next.stateAfterUpdate = nil
                }
                if next.region == sent.primaryRegion, copy.record.primaryRegion != sent.primaryRegion {
                    // Handed the primary: this copy now speaks for the key, to every peer. As the
                    // local UpdatePrimaryRegion, only an Enabled or Disabled copy takes it.
                    guard [.enabled, .disabled].contains(next.state) else {
                        throw KMSError(.invalidState, "\(copy.record.arn) is \(next.state.rawValue): it cannot become the primary key")
                    }
                    next.peerSynced = [:]
                    next.handingOver = nil
                }
                let added = sentVersions.subtracting(copy.material.keys)
                let merged = copy.material.merging(material.filter { added.contains($0.key) }) { ours, _ in ours }
                next = try identified(next, merged)
                guard next != copy.record || !added.isEmpty else { continue }
                try put(LiveKey(record: next, material: merged, policy: copy.policy), sealing: added.sorted())
            }
            record.note = "from peer \(peer)" + (made.isEmpty ? "" : ": replica in \(made.joined(separator: ", "))")
            return ((), changes)
        }
    }

    /// What a SyncKey message may say of its key, as a record with nothing else in it: the key's
    /// identity, spec, usage, origin, versions (their numbers, dates and rotation types only),
    /// rotation settings and primary Region. Every other field — state, deletion, policy, this
    /// deployment's bookkeeping — is this deployment's, whatever the message holds.
    private static func sharedFields(of shared: PeerMessage.SharedKeyState) throws(KMSError) -> KeyRecord {
        let sent = shared.record
        guard sent.multiRegion, sent.keyID.hasPrefix("mrk-"), Validate.isWellFormedKeyID(sent.keyID) else {
            throw KMSError(.validation, "peers replicate only multi-Region keys (mrk- IDs): \(sent.keyID)")
        }
        try Validate.accountID(sent.account)
        guard shared.regions.count <= PeerMessage.maximumRegions, shared.replicas.count <= PeerMessage.maximumRegions else {
            throw KMSError(.validation, "a key has copies in at most \(PeerMessage.maximumRegions) Regions")
        }
        for region in shared.regions + [sent.region] + shared.replicas.keys { try Validate.region(region, "region") }
        guard let primary = sent.primaryRegion, shared.regions.contains(primary), shared.regions.contains(sent.region),
              Set(shared.regions).count == shared.regions.count, shared.replicas.keys.allSatisfy(shared.regions.contains) else {
            throw KMSError(.validation, "the message's Regions do not hold its primary, its sender and its replicas once each")
        }
        guard sent.origin == .awsKMS, sent.manager == .customer, sent.customKeyStoreID == nil, sent.xksKeyID == nil, sent.pendingRotation == nil else {
            throw KMSError(.validation, "peers replicate only customer keys with material made by kmsd")
        }
        guard sent.spec.usages.contains(sent.usage), sent.spec.isImplemented else {
            throw KMSError(.validation, "\(sent.spec.rawValue) keys for \(sent.usage.rawValue) are not a key this service makes")
        }
        // Versions 1, 2, ... in order: the next rotation's number cannot overflow, and none is missing.
        guard !sent.versions.isEmpty, sent.versions.enumerated().allSatisfy({ UInt32($0.offset) + 1 == $0.element.version }) else {
            throw KMSError(.validation, "the message's versions are not 1, 2, ... in order")
        }
        // Material kmsd made neither expires nor has an importer's description: a version that
        // says otherwise would have the scheduler delete material here.
        guard sent.versions.allSatisfy({ $0.expirationModel == nil && $0.validTo == nil && $0.materialDescription == nil }) else {
            throw KMSError(.validation, "the message's versions carry imported-material settings: kmsd-made material has none")
        }
        if let days = sent.rotationPeriodInDays { try Validate.range(days, "rotationPeriodInDays", KeyRecord.rotationPeriods) }
        let dates = [sent.creationDate] + sent.versions.map(\.creationDate) + (sent.nextRotationDate.map { [$0] } ?? [])
        guard dates.allSatisfy(Self.plausibleDates.contains) else {
            throw KMSError(.validation, "the message has dates outside 1970 to 9999")
        }
        guard (0..<KeyRecord.maximumPrimaryEpoch).contains(sent.primaryEpoch ?? 0) else {
            throw KMSError(.validation, "a primary epoch is 0 to \(KeyRecord.maximumPrimaryEpoch)")
        }
        for request in shared.replicas.values {
            try Validate.length(request.description, "description", 0...8192)
            _ = try KeyPolicies.parsed(request.policy)
            try Validate.tags(request.tags)
        }
        return KeyRecord(
            keyID: sent.keyID, account: sent.account, region: sent.region, description: "", state: .enabled, usage: sent.usage, spec: sent.spec,
            origin: .awsKMS, manager: .customer, creationDate: sent.creationDate, deletionDate: nil, pendingWindowInDays: nil, policy: "",
            multiRegion: true, primaryRegion: primary, tags: [], primaryEpoch: sent.primaryEpoch, rotationEnabled: sent.rotationEnabled,
            rotationPeriodInDays: sent.rotationPeriodInDays, nextRotationDate: sent.nextRotationDate,
            versions: sent.versions.map { KeyVersion(version: $0.version, creationDate: $0.creationDate, rotationType: $0.rotationType) })
    }

    /// The dates a peer's message may carry.
    static let plausibleDates = Date(timeIntervalSince1970: 0)...Date(timeIntervalSince1970: 253_402_300_799)

    /// Whether `copy` already has what a message says the copies share (its material aside).
    private func sameSharedState(_ copy: LiveKey, _ sent: KeyRecord, regions: [String], in state: EngineState) -> Bool {
        let ours = copy.record
        func versions(_ record: KeyRecord) -> [String] { record.versions.map { "\($0.version) \($0.creationDate.timeIntervalSince1970) \($0.rotationType?.rawValue ?? "")" } }
        return ours.primaryRegion == sent.primaryRegion && (ours.primaryEpoch ?? 0) == (sent.primaryEpoch ?? 0)
            && versions(ours) == versions(sent) && ours.rotationEnabled == sent.rotationEnabled
            && ours.rotationPeriodInDays == sent.rotationPeriodInDays && ours.nextRotationDate == sent.nextRotationDate
            && copyRegions(of: ours, in: state) == regions.sorted()
    }

    /// Every version's material, parsed as the spec's: one per version, no more.
    private static func checkMaterial(_ shared: PeerMessage.SharedKeyState, of sent: KeyRecord) throws(KMSError) -> [UInt32: KeyMaterial] {
        guard Set(sent.versions.map(\.version)) == Set(shared.material.keys) else {
            throw KMSError(.validation, "the message's material is not one per version")
        }
        var material: [UInt32: KeyMaterial] = [:]
        for (version, bytes) in shared.material {
            // kmsd makes an HMAC key of its digest's length (KeyMaterial.generate), nothing else.
            if let digest = sent.spec.hmacDigest, bytes.count != digest.byteCount {
                throw KMSError(.validation, "version \(version)'s material is \(bytes.count) bytes, not a \(sent.spec.rawValue) key")
            }
            guard let parsed = try? KeyMaterial(spec: sent.spec, bytes: bytes) else {
                throw KMSError(.validation, "version \(version)'s material is not a \(sent.spec.rawValue) key")
            }
            if case let .asymmetric(key) = parsed, !key.isSound() {
                throw KMSError(.validation, "version \(version)'s \(sent.spec.rawValue) key pair is not sound (range, curve or pairing)")
            }
            material[version] = parsed
        }
        return material
    }

    /// A peer's deletion of its copy in `region` (a Region it serves): the copies here stop
    /// listing it, and a primary waiting for its replicas starts its own waiting period when it
    /// was the last.
    private func applyDeletion(account: String, keyID: String, region: String, from peer: String, _ peers: any ReplicaPeers) throws {
        try manage("SynchronizeMultiRegionKey", Self.peerCaller(peer, account: account, region: region)) { record, state in
            guard peers.peer(serving: region) == peer else {
                throw KMSError(.accessDenied, "peer \(peer) does not serve \(region): it cannot report the deletion of a copy there")
            }
            var changes: [StoreChange] = []
            for copy in state.keys.all(keyID) where copy.record.account == account && (copy.record.peerRegions ?? []).contains(region) {
                let next = copy.with { key in
                    key.peerRegions = key.peerRegions?.filter { $0 != region }
                    if key.peerRegions?.isEmpty == true { key.peerRegions = nil }
                    key.peerSynced?[region] = nil
                    key.peerReplicaRequests?[region] = nil
                }
                state.keys[next.record.identity] = next
                changes.append(.putKey(next.record))
                record.keyARN = next.record.arn
            }
            // The copy the primary was being handed to is gone: the former primary takes it back
            // (a new epoch, told to every peer).
            if let former = state.keys.all(keyID).first(where: { $0.record.account == account && $0.record.handingOver == true && $0.record.primaryRegion == region }) {
                for copy in state.keys.all(keyID) where copy.record.account == account {
                    let next = copy.with { key in
                        key.primaryRegion = former.record.region
                        key.primaryEpoch = (key.primaryEpoch ?? 0) + 1
                        if key.identity == former.record.identity {
                            if key.state == .updating { key.state = key.stateAfterUpdate ?? .enabled }
                            key.stateAfterUpdate = nil
                            key.handingOver = nil
                            key.peerSynced = [:]
                        }
                    }
                    state.keys[next.record.identity] = next
                    changes.append(.putKey(next.record))
                }
                record.note = "peer \(peer) deleted its copy in \(region), to which the primary was being moved: the primary stays in \(former.record.region)"
            }
            for copy in state.keys.all(keyID) where copy.record.account == account && copy.record.region == copy.record.primaryRegion {
                changes += primaryWaitingPeriod(copy, now: clock.now(), in: &state)
            }
            if record.note == nil { record.note = "peer \(peer) deleted its copy in \(region)" }
            return ((), changes)
        }
    }
}
