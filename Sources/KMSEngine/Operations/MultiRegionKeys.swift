import Foundation

/// What DescribeKey says of a multi-Region key (AWS `MultiRegionConfiguration`).
public struct MultiRegionConfiguration: Sendable, Equatable {
    public enum KeyType: String, Sendable { case primary = "PRIMARY", replica = "REPLICA" }
    public var keyType: KeyType
    public var primaryKey: (arn: String, region: String)
    public var replicaKeys: [(arn: String, region: String)]

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.keyType == rhs.keyType && lhs.primaryKey == rhs.primaryKey && lhs.replicaKeys.elementsEqual(rhs.replicaKeys, by: ==)
    }
}

public struct ReplicateKeyRequest: Sendable {
    public var keyID: String
    public var replicaRegion: String
    public var policy: String?
    public var bypassPolicyLockoutSafetyCheck = false
    public var description: String?
    public var tags: [Tag] = []
    public init(keyID: String, replicaRegion: String) {
        self.keyID = keyID
        self.replicaRegion = replicaRegion
    }
}

public struct ReplicateKeyResponse: Sendable {
    public var replicaKeyMetadata: KeyMetadata
    public var replicaPolicy: String
    public var replicaTags: [Tag]
}

/// Multi-Region keys within one deployment (docs/KMS.md, "Multi-Region keys"): a key made with
/// MultiRegion=true has an `mrk-` ID; ReplicateKey makes a key of the same ID and the same
/// material in another Region of the same account, so a ciphertext made in one Region decrypts in
/// the other. As AWS shares them: the key ID, spec, usage, origin, material and its rotation (done
/// on the primary, carried to every replica in the same transaction). Each Region's key keeps its
/// own policy, aliases, tags, grants, description and enabled state.
extension KMSEngine {
    /// A new multi-Region key's ID: `mrk-` and 32 hex digits, as AWS makes them.
    static func multiRegionKeyID() -> String {
        "mrk-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    }

    /// The other Regions' keys of the multi-Region key `record` is one of (none for a
    /// single-Region key).
    func relatedKeys(of record: KeyRecord, in state: EngineState) -> [LiveKey] {
        guard record.multiRegion else { return [] }
        return state.keys.all(record.keyID).filter { $0.record.account == record.account && $0.record.region != record.region }
    }

    func multiRegionConfiguration(of record: KeyRecord, in state: EngineState) -> MultiRegionConfiguration? {
        guard record.multiRegion, let primaryRegion = record.primaryRegion else { return nil }
        // A former primary handing over to a peer is a replica already, as AWS shows both
        // copies while the primary Region is Updating.
        return MultiRegionConfiguration(
            keyType: record.region == primaryRegion ? .primary : .replica,
            primaryKey: (ARN.key(record.keyID, account: record.account, region: primaryRegion), primaryRegion),
            replicaKeys: copyRegions(of: record, in: state).filter { $0 != primaryRegion }.map {
                (ARN.key(record.keyID, account: record.account, region: $0), $0)
            })
    }

    /// ReplicateKey: a replica of a multi-Region primary key in another Region, with the same ID
    /// and material, its own policy (given, or the default), description and tags. Called in the
    /// primary's Region; needs kms:ReplicateKey on the primary and kms:CreateKey in the replica's
    /// Region, as AWS does.
    public func replicateKey(_ request: ReplicateKeyRequest, caller: Caller) throws -> ReplicateKeyResponse {
        try manage(.replicateKey, caller) { record, state in
            let primary = try managedKey(request.keyID, action: .replicateKey, for: caller, in: state, record: &record)
            try Self.requireOwnAccount(primary.record, caller, "ReplicateKey")
            guard primary.record.multiRegion else {
                throw KMSError(.unsupportedOperation, "\(primary.record.arn) is not a multi-Region key: only multi-Region keys have replicas")
            }
            guard primary.record.primaryRegion == primary.record.region else {
                throw KMSError(.unsupportedOperation, "\(primary.record.arn) is a replica key: replicate its primary key in \(primary.record.primaryRegion ?? "?")")
            }
            try Validate.region(request.replicaRegion, "replicaRegion")
            guard request.replicaRegion != primary.record.region else {
                throw KMSError(.validation, "ReplicaRegion must be another Region than the primary key's (\(primary.record.region))")
            }
            guard [.enabled, .disabled].contains(primary.record.state) else {
                throw KMSError(.invalidState, "\(primary.record.arn) is \(primary.record.state.rawValue): only an Enabled or Disabled key is replicated")
            }
            let identity = KeyIdentity(account: primary.record.account, region: request.replicaRegion, keyID: primary.record.keyID)
            guard state.keys[identity] == nil, !(primary.record.peerRegions ?? []).contains(request.replicaRegion) else {
                throw KMSError(.alreadyExists, "\(primary.record.arn) already has a replica in \(request.replicaRegion)")
            }
            var replicaCaller = caller
            replicaCaller.region = request.replicaRegion
            try authorizeAccount(.createKey, replicaCaller, extra: Self.requestTags(request.tags), in: state, record: &record)
            if let description = request.description { try Validate.length(description, "description", 0...8192) }
            try Validate.tags(request.tags)
            let policyText = request.policy ?? KeyPolicies.defaultPolicy(account: caller.account)
            var copy = primary.record
            copy.region = request.replicaRegion
            copy.description = request.description ?? primary.record.description
            copy.policy = policyText
            copy.tags = request.tags
            copy.state = .enabled
            copy.creationDate = clock.now()
            copy.deletionDate = nil
            copy.pendingWindowInDays = nil
            let replica = LiveKey(record: copy, material: primary.material, policy: try KeyPolicies.parsed(policyText))
            if request.policy != nil {
                try checkKeyPolicy(replica, caller: replicaCaller, bypassLockoutCheck: request.bypassPolicyLockoutSafetyCheck, in: state)
            }
            if let peer = peerLink.current?.peer(serving: request.replicaRegion) {
                // A peer deployment's Region: the replica is Creating until the peer has made it
                // (``synchronizePeers()``); every copy here lists it from now on. The peer takes no
                // policy that shuts the account's root out (whatever the bypass): refused here at once.
                let root = Caller(account: copy.account, region: request.replicaRegion, requestID: caller.requestID)
                guard decide(.putKeyPolicy, root, target: .key(replica, grants: nil), in: state).allowed else {
                    throw KMSError(.malformedPolicyDocument, "a replica at peer \(peer) must let account \(copy.account) update its key policy")
                }
                let asked = PeerReplicaRequest(description: copy.description, policy: policyText, tags: copy.tags)
                var changes: [StoreChange] = []
                for key in [primary] + relatedKeys(of: primary.record, in: state) {
                    let listed = key.with {
                        $0.peerRegions = (($0.peerRegions ?? []) + [request.replicaRegion]).sorted()
                        if $0.identity == primary.record.identity {
                            $0.peerReplicaRequests = ($0.peerReplicaRequests ?? [:]).merging([request.replicaRegion: asked]) { $1 }
                        }
                    }
                    state.keys[listed.record.identity] = listed
                    changes.append(.putKey(listed.record))
                }
                var creating = copy
                creating.state = .creating
                creating.peerRegions = state.keys[primary.record.identity]?.record.peerRegions
                record.note = "replica \(copy.arn) at peer \(peer)"
                return (ReplicateKeyResponse(replicaKeyMetadata: metadata(of: LiveKey(record: creating, material: [:], policy: replica.policy), in: state), replicaPolicy: policyText, replicaTags: copy.tags), changes)
            }
            state.keys[identity] = replica
            record.note = "replica \(copy.arn)"
            return (ReplicateKeyResponse(replicaKeyMetadata: metadata(of: replica, in: state), replicaPolicy: policyText, replicaTags: copy.tags),
                    try storeChanges(for: replica))
        }
    }

    /// UpdatePrimaryRegion: the replica in `primaryRegion` becomes the primary key, and the
    /// primary a replica. Called in the primary's Region; needs kms:UpdatePrimaryRegion on both.
    public func updatePrimaryRegion(keyID: String, primaryRegion: String, caller: Caller) throws {
        try manage(.updatePrimaryRegion, caller) { record, state in
            let primary = try managedKey(keyID, action: .updatePrimaryRegion, for: caller, in: state, record: &record)
            try Self.requireOwnAccount(primary.record, caller, "UpdatePrimaryRegion")
            guard primary.record.multiRegion else {
                throw KMSError(.unsupportedOperation, "\(primary.record.arn) is not a multi-Region key")
            }
            guard primary.record.primaryRegion == primary.record.region else {
                throw KMSError(.unsupportedOperation, "\(primary.record.arn) is a replica key: call UpdatePrimaryRegion on the primary key in \(primary.record.primaryRegion ?? "?")")
            }
            try Validate.region(primaryRegion, "primaryRegion")
            guard primaryRegion != primary.record.region else { return ((), []) }
            guard (primary.record.primaryEpoch ?? 0) < KeyRecord.maximumPrimaryEpoch - 1 else {
                throw KMSError(.limitExceeded, "\(primary.record.arn) has changed its primary Region as often as it can")
            }
            // The requests for replicas at peers live on the primary, which alone sends them.
            guard (primary.record.peerReplicaRequests ?? [:]).isEmpty else {
                throw KMSError(.invalidState, "\(primary.record.arn) has replicas still Creating at peers: change the primary Region when they exist")
            }
            let identity = KeyIdentity(account: primary.record.account, region: primaryRegion, keyID: primary.record.keyID)
            if state.keys[identity] == nil, (primary.record.peerRegions ?? []).contains(primaryRegion), let peer = peerLink.current?.peer(serving: primaryRegion) {
                return try handOver(primary, to: primaryRegion, at: peer, in: &state, record: &record)
            }
            guard let replica = state.keys[identity] else {
                throw KMSError(.notFound, "\(primary.record.arn) has no replica in \(primaryRegion)")
            }
            for copy in [primary, replica] where ![.enabled, .disabled].contains(copy.record.state) {
                throw KMSError(.invalidState, "\(copy.record.arn) is \(copy.record.state.rawValue): both copies must be Enabled or Disabled to change the primary Region")
            }
            var replicaCaller = caller
            replicaCaller.region = primaryRegion
            try authorize(.updatePrimaryRegion, replicaCaller, key: replica, in: state, record: &record)
            var changes: [StoreChange] = []
            for key in [primary] + relatedKeys(of: primary.record, in: state) {
                let moved = key.with {
                    $0.primaryRegion = primaryRegion
                    $0.primaryEpoch = ($0.primaryEpoch ?? 0) + 1
                }
                state.keys[moved.record.identity] = moved
                changes.append(.putKey(moved.record))
            }
            record.note = "primary Region \(primary.record.region) → \(primaryRegion)"
            return ((), changes)
        }
    }

    /// UpdatePrimaryRegion to a Region a peer deployment serves. The replica there is the peer's
    /// to authorize and to change: this deployment makes its copies replicas of it at once, and
    /// the former primary is Updating (usable, as AWS's is) until the peer has taken the change
    /// (``synchronizePeers()``); it keeps telling every peer until all have it, so that each takes
    /// the new primary's messages.
    private func handOver(_ primary: LiveKey, to primaryRegion: String, at peer: String, in state: inout EngineState,
                          record: inout AuditRecord) throws(KMSError) -> ((), [StoreChange]) {
        guard primary.record.state == .enabled || primary.record.state == .disabled else {
            throw KMSError(.invalidState, "\(primary.record.arn) is \(primary.record.state.rawValue): it must be Enabled or Disabled to change the primary Region")
        }
        var changes: [StoreChange] = []
        for key in [primary] + relatedKeys(of: primary.record, in: state) {
            let moved = key.with {
                $0.primaryRegion = primaryRegion
                $0.primaryEpoch = ($0.primaryEpoch ?? 0) + 1
                if $0.identity == primary.record.identity {
                    $0.stateAfterUpdate = $0.state
                    $0.state = .updating
                    $0.handingOver = true
                    $0.peerSynced = nil
                }
            }
            state.keys[moved.record.identity] = moved
            changes.append(.putKey(moved.record))
        }
        record.note = "primary Region \(primary.record.region) → \(primaryRegion) at peer \(peer)"
        return ((), changes)
    }

    /// Carries what a multi-Region key's copies share (material and its versions, rotation
    /// settings) from the primary `key` to every replica; the changes that store them.
    func propagateShared(from key: LiveKey, in state: inout EngineState) throws -> [StoreChange] {
        guard key.record.multiRegion, key.record.primaryRegion == key.record.region else { return [] }
        var changes: [StoreChange] = []
        for replica in relatedKeys(of: key.record, in: state) {
            let known = Set(replica.record.versions.map(\.version))
            var material = replica.material
            for version in key.record.versions where !known.contains(version.version) {
                guard let backing = key.material[version.version] else { continue }
                material[version.version] = backing
                changes.append(.putMaterial(replica.record.identity, version: version.version,
                                            sealed: try rootKey.seal(backing.storedBytes(), label: replica.record.identity.materialLabel,
                                                                     version: version.version)))
            }
            var record = replica.record
            record.versions = key.record.versions
            record.rotationEnabled = key.record.rotationEnabled
            record.rotationPeriodInDays = key.record.rotationPeriodInDays
            record.nextRotationDate = key.record.nextRotationDate
            guard record != replica.record || !changes.isEmpty else { continue }
            state.keys[record.identity] = LiveKey(record: record, material: material, policy: replica.policy)
            changes.insert(.putKey(record), at: 0)
        }
        return changes
    }

    /// ReplicateKey and UpdatePrimaryRegion are not for other accounts ("Cross-account use: No"
    /// in AWS's reference): a replica is its owner's key, whatever a key policy grants.
    static func requireOwnAccount(_ key: KeyRecord, _ caller: Caller, _ operation: String) throws(KMSError) {
        guard caller.account == key.account else {
            throw KMSError(.accessDenied, "\(operation) is not allowed across accounts: \(key.arn) belongs to account \(key.account)")
        }
    }

    /// Rotation of a multi-Region key is the primary's: a replica follows it.
    static func requirePrimaryForRotation(_ key: KeyRecord) throws(KMSError) {
        if key.isReplica {
            throw KMSError(.unsupportedOperation, "\(key.arn) is a multi-Region replica key: its rotation is its primary key's, in \(key.primaryRegion ?? "?")")
        }
    }
}
