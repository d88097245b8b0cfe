import Dispatch
import Foundation

extension KMSEngine {
    /// Runs ``runScheduledTasks()`` every `interval` on a private queue until the engine is released.
    /// A failed run (the store unavailable) is retried at the next tick.
    func startScheduler(every interval: Duration) -> DispatchSourceTimer {
        Self.repeatingTimer(on: DispatchQueue(label: "kmsd.scheduler"), every: interval) { [weak self] in _ = try? self?.runScheduledTasks() }
    }

    /// A timer that runs `body` every `interval` on `queue`, first after one interval.
    static func repeatingTimer(on queue: DispatchQueue, every interval: Duration, _ body: @escaping @Sendable () -> Void) -> DispatchSourceTimer {
        let timer = DispatchSource.makeTimerSource(queue: queue)
        let milliseconds = Int(interval.components.seconds * 1000 + interval.components.attoseconds / 1_000_000_000_000_000)
        timer.schedule(deadline: .now() + .milliseconds(milliseconds), repeating: .milliseconds(max(1, milliseconds)))
        timer.setEventHandler(handler: body)
        timer.resume()
        return timer
    }

    /// Carries out what is due at the clock's current time: automatic rotations of enabled keys,
    /// and the destruction of keys whose deletion date has passed (record, material and aliases;
    /// irrecoverable). Returns how many of each. The daemon calls it periodically; tests call it
    /// after moving a ``ManualClock``.
    @discardableResult
    public func runScheduledTasks() throws -> (rotated: Int, deleted: Int, expired: Int) {
        let now = clock.now()
        let due = state.withLock { state in
            state.keys.values.map(\.record).filter { key in
                (key.state == .pendingDeletion && (key.deletionDate ?? .distantFuture) <= now)
                    || (key.state == .enabled && key.rotationEnabled && (key.nextRotationDate ?? .distantFuture) <= now && !key.isReplica)
                    || !Self.expiredVersions(key, now: now).isEmpty
            }
        }
        var rotations = 0, deletions = 0, expirations = 0
        for key in due {
            switch try carryOut(key, now: now) {
            case .deleted: deletions += 1
            case .rotated: rotations += 1
            case .expired: expirations += 1
            case .nothing: break
            }
        }
        return (rotations, deletions, expirations)
    }

    enum ScheduledOutcome { case deleted, rotated, expired, nothing }

    /// The versions whose imported material is past its ValidTo: deleted, as AWS deletes it (the
    /// key returns to PendingImport if the current one goes). A deleted material has no ValidTo.
    static func expiredVersions(_ key: KeyRecord, now: Date) -> [UInt32] {
        key.allVersions.filter { $0.expirationModel == .expires && ($0.validTo ?? .distantFuture) <= now }.map(\.version)
    }

    /// Whether the current material has expired (then the key is unusable at once).
    static func materialExpired(_ key: KeyRecord, now: Date) -> Bool {
        guard let current = key.currentVersion else { return false }
        return expiredVersions(key, now: now).contains(current.version)
    }

    /// Deletes or rotates `due` (as the list of due keys saw it) if it is still due now. The
    /// check is repeated under the management lock, against the key as it is then: a
    /// CancelKeyDeletion (or DisableKeyRotation, or a deletion) between the list and this step
    /// wins, and the key is left alone — the list is only a hint.
    ///
    /// - Parameter peersTold: every peer deployment holding a copy of the key has been told of its
    ///   deletion (``synchronizePeers()``); until then a multi-Region copy that peers know of waits.
    func carryOut(_ due: KeyRecord, now: Date, peersTold: Bool = false) throws -> ScheduledOutcome {
        let caller = Caller(account: due.account, region: due.region, principal: "kms.amazonaws.com", requestID: "scheduler")
        let deleting = due.state == .pendingDeletion && (due.deletionDate ?? .distantFuture) <= now
        let expiring = !deleting && !Self.expiredVersions(due, now: now).isEmpty
        do { return try carryOut(due, deleting: deleting, expiring: expiring, now: now, caller: caller, peersTold: peersTold) } catch is NothingToRecord { return .nothing }
    }

    /// The step itself, in a management operation; throws ``NothingToRecord`` if it is no longer due.
    private func carryOut(_ due: KeyRecord, deleting: Bool, expiring: Bool, now: Date, caller: Caller, peersTold: Bool) throws -> ScheduledOutcome {
        try manage(deleting ? "DeleteKey" : expiring ? "DeleteExpiredKeyMaterial" : "RotateKey", caller) { record, state in
            guard let live = state.keys[due.identity] else { throw NothingToRecord() }
            let key = live.record
            record.keyARN = key.arn
            if expiring {
                let expired = Self.expiredVersions(key, now: now)
                guard !expired.isEmpty else { throw NothingToRecord() }
                var next = live, changes: [StoreChange] = []
                for version in expired {
                    let (without, deleted) = Self.withoutMaterial(next, version: version)
                    next = without
                    changes += deleted.filter { if case .putKey = $0 { return false }; return true }
                }
                state.keys[key.identity] = next
                return (.expired, [.putKey(next.record)] + changes)
            }
            if deleting {
                guard key.state == .pendingDeletion, (key.deletionDate ?? .distantFuture) <= now else { throw NothingToRecord() }
                if !peersTold, let peers = peerLink.current, !peersHolding(key, peers).isEmpty { throw NothingToRecord() }
                state.keys[key.identity] = nil
                state.grants[key.identity] = nil
                state.aliases = state.aliases.filter { !($0.value.targetKeyID == key.keyID && $0.value.account == key.account && $0.value.region == key.region) }
                // A token's key goes with its KMS key, as AWS deletes it from the cluster. An
                // external key is its owner's, and a disconnected token keeps an orphan (as AWS's
                // cluster does) that `kmsd` names in the audit note.
                if let store = key.customKeyStoreID, key.xksKeyID == nil {
                    if let connection = keyStoreConnections.connection(store), (try? connection.deleteKey(label: key.keyID)) != nil {
                        record.note = "key material deleted from custom key store \(store)"
                    } else {
                        record.note = "custom key store \(store) is not connected: its key labelled \(key.keyID) is left in the token"
                    }
                }
                return (.deleted, [.deleteKey(key.identity)] + primaryAfterReplicaDeletion(key, now: now, in: &state))
            }
            // A replica's material comes from its primary's rotation, never its own.
            guard key.state == .enabled, key.rotationEnabled, (key.nextRotationDate ?? .distantFuture) <= now, !key.isReplica else { throw NothingToRecord() }
            var (next, changes) = try rotated(live, type: .automatic)
            next = next.with { $0.nextRotationDate = now.addingTimeInterval(Double($0.rotationPeriodInDays ?? 365) * 86_400) }
            state.keys[key.identity] = next
            changes[0] = .putKey(next.record)
            return (.rotated, changes + (try propagateShared(from: next, in: &state)))
        }
    }

    /// When the last replica of a multi-Region primary that waits for them (PendingReplicaDeletion)
    /// is deleted, the primary's own waiting period starts, as AWS does.
    func primaryAfterReplicaDeletion(_ deleted: KeyRecord, now: Date, in state: inout EngineState) -> [StoreChange] {
        guard deleted.multiRegion, let primaryRegion = deleted.primaryRegion, primaryRegion != deleted.region,
              let primary = state.keys[KeyIdentity(account: deleted.account, region: primaryRegion, keyID: deleted.keyID)],
              primary.record.state == .pendingReplicaDeletion else { return [] }
        return primaryWaitingPeriod(primary, now: now, in: &state)
    }

    /// Starts the waiting period of a primary in PendingReplicaDeletion that has no replica left,
    /// here or at a peer.
    func primaryWaitingPeriod(_ primary: LiveKey, now: Date, in state: inout EngineState) -> [StoreChange] {
        guard primary.record.state == .pendingReplicaDeletion, relatedKeys(of: primary.record, in: state).isEmpty,
              (primary.record.peerRegions ?? []).isEmpty else { return [] }
        let waiting = primary.with {
            $0.state = .pendingDeletion
            $0.deletionDate = now.addingTimeInterval(Double($0.pendingWindowInDays ?? 30) * 86_400)
        }
        state.keys[waiting.record.identity] = waiting
        return [.putKey(waiting.record)]
    }
}
