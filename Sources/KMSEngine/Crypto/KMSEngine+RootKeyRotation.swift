import Foundation
import KMSFSCrypto
import KMSStore

/// What a rotation of the root key did (``KMSEngine/rotateRootKey(to:)``).
public struct RootKeyRotation: Sendable, Equatable {
    /// Key material versions re-sealed.
    public var materialVersions: Int
    /// Access key secrets re-sealed.
    public var accessKeys: Int
    /// Custom key store secrets (passwords, proxy credentials) re-sealed.
    public var customKeyStores: Int
    /// The first audit record chained under the new root key: the rotation's own.
    public var firstRecord: Int64
    /// The old and new keys' identifiers (``RootKey/identifier``).
    public var from: String
    public var to: String
}

extension KMSEngine {
    static let rotateRootKeyOperation = "RotateRootKey"

    /// The identifier (``RootKey/identifier``) of the root key the store is under now.
    public var rootKeyIdentifier: String { keys.withLock { $0.root.identifier } }

    /// Rotates the store's root key to `next`, while the engine serves.
    ///
    /// One transaction: every sealed row (key material, access key and custom key store
    /// secrets) is opened under the current key and sealed under `next`; every record gets its
    /// MAC under `next` and the state digest is computed again; the root-key check, the
    /// fingerprint key and the audit chain's history are sealed under `next`; and the rotation's
    /// audit record begins the chain's segment under `next`. Interrupted, it leaves the store as
    /// it was, under the current key: running it again is the resumption. Cryptographic calls go
    /// on meanwhile (the material itself does not change); management calls wait for it.
    ///
    /// Afterwards only `next` opens the store (or an instance given it as ``nextRootKey``): the
    /// operator installs it as the root key. Other instances of a shared store that were given
    /// it take it up at their next poll; those that were not stop serving and say why.
    /// - Throws: ``KMSError`` (`ValidationException`) if `next` is the current key; ``StoreError``
    ///   if a sealed row does not open under the current key (the store is then left as it was).
    public func rotateRootKey(to next: RootKey) throws -> RootKeyRotation {
        try checkNextRootKey(next)
        let announcing = follower != nil ? try announceRotation(to: next) : nil
        let announced = announcing?.announcement
        var outcome: RootKeyRotation?
        defer { if let announced, outcome == nil { withdrawAnnouncement(announced) } }
        try management.withLock {
            try store.holdingTurn {
                if follower != nil { try follow() }
                let current = keys.withLock { $0 }
                try checkNew(next)
                var record = newRecord(Self.rotateRootKeyOperation, Self.adminCaller)
                rotatingRootKey.store(true, ordering: .releasing)
                defer { rotatingRootKey.store(false, ordering: .releasing) }
                do {
                    if let announced, try store.metadata(Self.rotationAnnouncement) != announced {
                        throw KMSError(.validation, "the announcement of this rotation was replaced or withdrawn (another rotation at the same time?): nothing was rotated; run it again")
                    }
                    if let announcing, DispatchTime.now().uptimeNanoseconds - announcing.at > UInt64(announcing.pause) * 500_000_000 {
                        throw KMSError(.internalError, "the rotation did not start within half of the pause it announced (\(announcing.pause) s; "
                                       + "the others resume after it): nothing was rotated; run it again")
                    }
                    var (changes, counts) = try resealed(store.load(), from: current.root, to: next)
                    if announced != nil { changes.append(.deleteMetadata(name: Self.rotationAnnouncement)) }
                    var rotated: StoreKeys?
                    let rotation = AuditLog.Rotation(authenticator: try RecordAuthenticator(rootKey: next)) { from in
                        let keys = try current.rotated(to: next, from: from)
                        rotated = keys
                        return (try keys.chain(), try keys.sealedMetadata())
                    }
                    record.note = "root key rotated from \(current.root.identifier) to \(next.identifier): \(counts.material) key material versions, \(counts.accessKeys) access key secrets and "
                        + "\(counts.customKeyStores) custom key store secrets sealed again, every record authenticated again"
                    _ = try audit.commit(changes: changes, record: record, basedOn: nil, rotation: rotation)
                    guard let rotated else { throw StoreError("the rotation committed without its audit record") }
                    take(rotated, previous: current.root)
                    keepSealedCopies(changes)
                    // The store's generation moved: a shared store's instance loads it again (its
                    // own material rows are sealed anew); one writer has nothing to load.
                    // Committed: a failure to load now is the follower's to retry, not this call's.
                    rotatingRootKey.store(false, ordering: .releasing)
                    if follower != nil { _ = try? follow() }
                    outcome = RootKeyRotation(materialVersions: counts.material, accessKeys: counts.accessKeys,
                                              customKeyStores: counts.customKeyStores, firstRecord: rotated.history.currentFrom,
                                              from: current.root.identifier, to: next.identifier)
                } catch {
                    record.errorCode = (error as? KMSError)?.code.rawValue ?? KMSError.Code.internalError.rawValue
                    record.note = "root key not rotated: \(error)"
                    audit.append(record)
                    throw error
                }
            }
        }
        guard let outcome else { throw StoreError("the root key was not rotated") }
        return outcome
    }

    /// Refuses `next` if it is the store's root key now or was one before (its audit chain key is
    /// in the history): a key used again would make the store's older checks and chain segments
    /// pass for current ones.
    /// Throws what ``rotateRootKey(to:)`` would refuse `next` for (not a key; the store's key
    /// now, or before): checked before anything is written for a rotation to it.
    public func checkNextRootKey(_ next: RootKey) throws {
        guard !next.isDegenerate else {
            throw KMSError(.validation, "the new root key has every byte the same: not a key (let the rotation make one)")
        }
        try checkNew(next)
    }

    private func checkNew(_ next: RootKey) throws {
        let current = keys.withLock { $0 }
        guard current.root.key != next.key else { throw KMSError(.validation, "the new root key is the store's root key already") }
        let chainKey = try AuditChain.key(next)
        guard !current.history.segments.contains(where: { $0.key == chainKey }) else {
            throw KMSError(.validation, "the new root key was this store's root key before: rotate to a new one")
        }
    }

    /// The store changes that seal everything `contents` holds sealed under `current` again
    /// under `next` (the metadata is written with the rotation's audit record).
    private func resealed(_ contents: StoreContents, from current: RootKey, to next: RootKey) throws
        -> ([StoreChange], (material: Int, accessKeys: Int, customKeyStores: Int)) {
        func reseal(_ sealed: [UInt8], label: String, version: UInt32, what: String) throws -> [UInt8] {
            guard let opened = try? current.open(sealed, label: label, version: version) else {
                throw StoreError("\(what) does not open under the current root key: nothing was rotated")
            }
            return try next.seal(opened, label: label, version: version)
        }
        var changes: [StoreChange] = []
        var counts = (material: 0, accessKeys: 0, customKeyStores: 0)
        for (identity, rows) in contents.sealedMaterial {
            for (version, sealed) in rows {
                changes.append(.resealMaterial(identity, version: version, sealed: try reseal(
                    sealed, label: identity.materialLabel, version: version, what: "the material of key \(identity.keyID) version \(version)")))
                counts.material += 1
            }
        }
        for (key, sealed) in contents.accessKeys {
            changes.append(.putAccessKey(key, sealedSecret: try reseal(
                sealed, label: key.secretLabel, version: 0, what: "the secret of access key \(key.accessKeyID)")))
            counts.accessKeys += 1
        }
        for (keyStore, sealed) in contents.customKeyStores {
            changes.append(.putCustomKeyStore(keyStore, sealedSecret: try reseal(
                sealed, label: keyStore.secretLabel, version: 0, what: "the secret of custom key store \(keyStore.id)")))
            counts.customKeyStores += 1
        }
        return (changes, counts)
    }

    /// The metadata that announces a rotation to a shared store's other instances: a check value
    /// sealed under the new key, which those given it as their next open.
    static let rotationAnnouncement = "root_rotation"
    /// Not the check's label: an announcement put in the check's place opens as nothing.
    static let announcementLabel = "kmsd root key rotation announced"

    /// Before a rotation of a shared store: tells the other instances, and gives those without
    /// the new key time to stop answering and write their audit records while the writers' turn
    /// is free — after the rotation they could chain none (a rotation holds the turn for as long
    /// as it re-seals, and their records would wait behind it and be lost). The wait is the
    /// follower's bound and two polls: an instance still answering after it has polled since the
    /// announcement (one that has not refuses requests), and each poll reads the announcement.
    ///
    /// - Returns: the announcement, `u64 milliseconds since 1970 ‖ u32 pause seconds ‖ sealed
    ///   value`, and when it was made (this instance's monotonic clock). Each instance pauses for
    ///   the announced time from when it first sees it (by its own clock: the instances' clocks
    ///   need not agree), so a rotating instance that died stops the others no longer; the time
    ///   made only tells a stale announcement (``staleAnnouncement``) from a current one.
    private func announceRotation(to next: RootKey) throws -> (announcement: [UInt8], pause: UInt32, at: UInt64) {
        let records = state.withLock { $0.keys.count + $0.aliases.count + $0.accessKeys.count + $0.identities.count
            + $0.grants.values.reduce(0) { $0 + $1.count } }
        let pause = Self.rotationPause(records: records)
        var announcement: [UInt8] = []
        announcement.appendUInt64(UInt64(max(0, clock.now().timeIntervalSince1970 * 1000)))
        announcement.appendUInt32(pause)
        announcement += try next.seal(try SecretBytes.random(count: 32), label: Self.announcementLabel, version: 0)
        announcedRotation.withLock { $0 = announcement }
        try manage(Self.rotateRootKeyOperation, Self.adminCaller) { record, _ in
            record.note = "rotation of the root key to \(next.identifier) announced"
            return ((), [.putMetadata(name: Self.rotationAnnouncement, value: announcement)])
        }
        let at = DispatchTime.now().uptimeNanoseconds
        Thread.sleep(forTimeInterval: Double(StoreFollower.staleLimit + 2 * StoreFollower.pollNanoseconds) / 1e9)
        return (announcement, pause, at)
    }

    /// How long instances without the new key pause for a rotation of a store of `records`
    /// records: a minute, and 5 ms a record (ten times what re-sealing one takes in a release
    /// build), at most an hour. The rotation starts within half of it or not at all.
    static func rotationPause(records: Int) -> UInt32 { UInt32(min(3600, 60 + records / 200)) }

    /// An announcement made more than this long before its pause ended is stale whatever the
    /// clocks say: its rotation is long dead.
    static let staleAnnouncement: Double = 600

    /// After a rotation that did not happen: its announcement goes, if it is still there (not
    /// another rotation's, announced meanwhile). Best effort: the others' pause ends by itself.
    private func withdrawAnnouncement(_ announcement: [UInt8]) {
        _ = try? manage(Self.rotateRootKeyOperation, Self.adminCaller) { record, _ in
            guard try store.metadata(Self.rotationAnnouncement) == announcement else { throw NothingToRecord() }
            record.note = "announced rotation of the root key withdrawn"
            return ((), [.deleteMetadata(name: Self.rotationAnnouncement)])
        }
    }

    /// What a load of a shared store found announced (`announcement`): this instance pauses if it
    /// was not given the key the store is about to be rotated to, and resumes once the
    /// announcement is gone.
    ///
    /// An announcement is acted on once (the pause is bounded even if it stays), and this
    /// instance's own is not. A pause ends early only when the announcement went with a change
    /// of the store (`storeMoved`: its sealed generation moved, as a withdrawal moves it): a row
    /// deleted behind kmsd does not end it.
    func noticeAnnouncedRotation(_ announcement: [UInt8]?, storeMoved: Bool) {
        guard let follower else { return }
        guard let announcement else {
            if storeMoved {
                announcedRotation.withLock { $0 = nil }
                follower.endRotationPause()
            }
            return
        }
        let isNew = announcedRotation.withLock { last in
            defer { last = announcement }
            return last != announcement
        }
        guard isNew, announcement.count > 12 else { return }
        let sealed = Array(announcement[12...])
        guard !(nextRootKey.map { StoreKeys.opensCheck($0, sealed, label: Self.announcementLabel) } ?? false) else { return }
        let made = Double(announcement[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }) / 1000
        let pause = Double(min(3600, announcement[8..<12].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }))
        guard clock.now().timeIntervalSince1970 - made < pause + Self.staleAnnouncement else { return }
        follower.pauseForRotation(seconds: pause)
        // What it answered so far goes into the trail now, while the turn is free.
        try? audit.flush()
    }

    /// Puts what `changes` sealed again into the state's copies of the sealed rows: a custom key
    /// store's secret is opened from its copy at each connection, and a shared store's load
    /// keeps the keys whose rows match their copies.
    private func keepSealedCopies(_ changes: [StoreChange]) {
        state.withLock { state in
            for change in changes {
                switch change {
                case let .resealMaterial(identity, version, sealed):
                    state.sealedMaterial[identity, default: [:]][version] = sealed
                case let .putCustomKeyStore(record, sealed):
                    if let held = state.customKeyStores[record.id] { state.customKeyStores[record.id] = (held.record, sealed) }
                default:
                    break
                }
            }
        }
    }

    /// Makes `keys` the engine's; `previous` goes on opening tokens sealed before (sessions,
    /// import parameters) until this process ends.
    private func take(_ keys: StoreKeys, previous: RootKey) {
        self.keys.withLock { $0 = keys }
        previousRoot.withLock { $0 = previous }
    }

    /// Called when a shared store's position cannot be read (`failure`): if another instance
    /// rotated the root key to this instance's ``nextRootKey``, takes the new keys up (records,
    /// chain; the anchor follower reads them itself) and returns; otherwise throws — saying so if the store was rotated to a key
    /// this instance does not have, and `failure` if it was not rotated at all.
    func adoptRotatedRootKey(failure: any Error) throws {
        guard let check = try store.metadata("root_check") else { throw failure }
        let current = keys.withLock { $0 }
        if StoreKeys.opensCheck(current.root, check) { throw failure }
        guard let next = nextRootKey, StoreKeys.opensCheck(next, check) else {
            // For good: refuse requests now (not after the follower's bound), write nothing more,
            // and have the anchor say so, so that no restart under this key takes an older copy.
            audit.retireRootKey()
            follower?.retire()
            throw StoreError(AuditLog.retiredMessage)
        }
        let rotated = try StoreKeys.load(root: next, metadata: store.metadata)
        try audit.adopt(try rotated.chain()) { try store.authenticateRecords(with: RecordAuthenticator(rootKey: next), upgrade: false) }
        take(rotated, previous: current.root)
    }
}
