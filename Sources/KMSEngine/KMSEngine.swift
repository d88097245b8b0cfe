import Dispatch
import Foundation
import KMSFSCrypto
import KMSStore
import Synchronization

/// The key service: AWS KMS semantics over a sealed key store, with no network in it.
///
/// Embedded in kmsfs by default and served on the wire by kmsd. Every operation takes a
/// ``Caller`` and is audited whether it succeeds or not. Management operations are serialized and
/// written through to the store (with their audit record) before they take effect in memory;
/// cryptographic operations read an in-memory snapshot and never touch SQLite.
public final class KMSEngine: Sendable {
    let store: any KeyStore
    /// The root key and what derives from it (``StoreKeys``); replaced by a rotation of the root
    /// key, here (``rotateRootKey(to:)``) or by another instance of a shared store.
    let keys: Mutex<StoreKeys>
    var rootKey: RootKey { keys.withLock { $0.root } }
    /// The root key before a rotation this process saw: tokens it sealed (sessions, import
    /// parameters) still open until they expire or the process ends. Nothing stored is under it.
    let previousRoot = Mutex<RootKey?>(nil)
    var previousRootKey: RootKey? { previousRoot.withLock { $0 } }
    /// The root key the store may be rotated to (`--next-root-key-*`): an instance given it
    /// follows another instance's rotation of a shared store, and opens a store rotated already.
    let nextRootKey: RootKey?
    /// Set while this instance rotates the root key holding a shared store's writers' turn:
    /// nobody else changes the store meanwhile, so the follower confirms the state without
    /// loading it (a load between the commit and the new keys' taking effect would fail).
    let rotatingRootKey = Atomic<Bool>(false)
    /// The last announcement of a rotation this instance saw in its shared store, or made.
    let announcedRotation = Mutex<[UInt8]?>(nil)
    /// Whether the store opened under ``nextRootKey`` (rotated already): the operator should
    /// install it as the root key.
    public var openedUnderNextRootKey: Bool { nextRootKey.map { $0.key == rootKey.key } ?? false }
    let audit: AuditLog
    let clock: any EngineClock
    /// The working state. Held only to read a snapshot or to swap in a committed change.
    let state: Mutex<EngineState>
    let pendingDeletionAlarm = PendingDeletionAlarm()
    let rejectedRequests = RejectedRequests()
    /// Request quotas (none until ``setQuotas(_:)``), and the limit on how many throttled
    /// requests the trail records (a client over its quota must not fill the trail instead).
    let quotas = QuotaBuckets()
    let throttledRequests = RejectedRequests()
    let lastUsage: LastUsageTracker
    /// How custom key stores are reached (nil: none can be); and their live connections.
    let customKeyStoreConnector: (any CustomKeyStoreConnector)?
    let keyStoreConnections = CustomKeyStoreConnections()
    /// Serializes management operations (draft, commit, swap); taken before `state`.
    let management = ExclusiveLock()
    /// Serializes a shared store's loads with the installs of what they return: a load from the
    /// change feed is applied to the state the previous load left (plus this instance's own
    /// changes since, which the feed also names), so two may not overlap.
    let loading = ExclusiveLock()
    /// The background timer of ``runScheduledTasks()``, if any. `nonisolated(unsafe)`: set once
    /// in init; a dispatch source is thread-safe to cancel.
    private nonisolated(unsafe) var scheduler: DispatchSourceTimer?
    /// A shared store's follower (``StoreFollower``): nil when this instance is the store's one writer.
    let follower: StoreFollower?
    /// Moves a shared store's instance's audit anchor along the others' records (nil otherwise).
    let anchorFollower: AnchorFollower?
    /// The peer deployments multi-Region keys are replicated with (none until ``connectPeers(_:every:)``).
    let peerLink = PeerLink()

    /// Opens (or creates) the key store at `path` — an SQLite file, or a PostgreSQL database named
    /// by a `postgres://` URI (``StoreLocation``) — under `rootKey`.
    ///
    /// - Parameters:
    ///   - schedulerInterval: how often due rotations and deletions run in the background; nil
    ///     for none (the caller runs ``runScheduledTasks()`` itself, as tests do).
    /// - Throws: ``StoreError`` if the store cannot be opened, or if `rootKey` is not the key the
    ///   store was created with; in that case nothing in the store is changed.
    ///   - auditAnchor: a file outside the store where the audit head is kept (``AuditAnchor``);
    ///     nil for none.
    ///   - waitForWriter: wait while another process writes the store, then open it (a standby).
    ///   - shared: serve a PostgreSQL store together with other instances (``StoreFollower``).
    ///   - onStoreLost: called when the store's PostgreSQL session (and its writer lock) is lost:
    ///     the caller must stop serving, since another instance may be writing already.
    ///   - nextRootKey: the key the store may be rotated to (``nextRootKey``).
    public static func open(path: String, rootKey: RootKey, nextRootKey: RootKey? = nil, clock: any EngineClock = SystemClock(),
                            schedulerInterval: Duration? = .seconds(60), auditAnchor: String? = nil,
                            createAnchor: Bool = false, customKeyStores: (any CustomKeyStoreConnector)? = nil,
                            waitForWriter: Bool = false, shared: Bool = false,
                            onStoreLost: (@Sendable (String) -> Void)? = nil) throws -> KMSEngine {
        let location = StoreLocation(path)
        // A standby keeps its anchor up with the serving instance's trail while it waits; an
        // instance serving a shared store, with the trail the others write.
        let follower = auditAnchor.map { AnchorFollower(location: location, anchor: AuditAnchor(path: $0), roots: [rootKey] + (nextRootKey.map { [$0] } ?? [])) }
        return try KMSEngine(store: RelationalKeyStore(location: location, shared: shared, waitForWriter: waitForWriter,
                                                       whileWaiting: { follower?.followIfDue() }, onLost: onStoreLost), rootKey: rootKey,
                             nextRootKey: nextRootKey, clock: clock, schedulerInterval: schedulerInterval,
                      anchor: auditAnchor.map(AuditAnchor.init), createAnchor: createAnchor, customKeyStores: customKeyStores,
                      anchorFollower: shared ? follower : nil)
    }

    init(store: any KeyStore, rootKey: RootKey, nextRootKey: RootKey? = nil, clock: any EngineClock, schedulerInterval: Duration?,
         anchor: AuditAnchor? = nil, createAnchor: Bool = false, customKeyStores: (any CustomKeyStoreConnector)? = nil,
         anchorFollower: AnchorFollower? = nil) throws {
        self.store = store
        customKeyStoreConnector = customKeyStores
        self.clock = clock
        self.nextRootKey = nextRootKey
        self.anchorFollower = anchorFollower
        lastUsage = LastUsageTracker(startDate: clock.now())
        let root = try Self.checkRootKey(rootKey, next: nextRootKey, store: store)
        let keys = try StoreKeys.load(root: root, metadata: store.metadata)
        self.keys = Mutex(keys)
        let chain = try keys.chain()
        let upgrading = try !store.recordsAuthenticated()
        if upgrading { try Self.checkNeverAuthenticated(store: store, chain: chain) }
        try store.authenticateRecords(with: RecordAuthenticator(rootKey: root), upgrade: upgrading)
        let contents = try store.loadChanges(stateAt: 0)
        // A store with no state digest: made before digests, or one whose digest was removed to
        // have an edited set of records digested as it is. The trail tells them apart, as for
        // the records' marker (which, when upgrading, has just checked the trail whole).
        // Every store gets the marker with its first digest, a new one too: a digest deleted
        // later must find it in the trail.
        let markState = contents.stateDigestMissing
        if markState && !upgrading {
            try Self.checkNever(Self.authenticatedStateOperation, store: store, chain: chain,
                                what: "the set of its records was authenticated")
        }
        let (state, resealed) = try Self.liveState(contents, keys: keys)
        if contents.legacyMaterialLabels {
            // One transaction: every row under its identity, and the migration's marker gone.
            try store.apply(resealed + [.deleteMetadata(name: "legacy_material_labels")], audit: [])
        }
        self.state = Mutex(state)
        self.audit = try AuditLog(store: store, chain: chain, last: contents.lastAudit, anchor: anchor, createAnchor: createAnchor)
        follower = store.shared ? StoreFollower() : nil
        if upgrading {
            // The trail says so from now on: a store whose marker is later removed is refused.
            try manage(Self.authenticatedRecordsOperation, Self.adminCaller) { record, _ in
                record.note = "store records authenticated from here on"
                return ((), [])
            }
        }
        if markState {
            // This commit writes the first digest; the trail remembers that one existed.
            try manage(Self.authenticatedStateOperation, Self.adminCaller) { record, _ in
                record.note = "the set of store records is authenticated from here on"
                return ((), [])
            }
        }
        store.requireDigest()
        reconnectCustomKeyStores()
        if let schedulerInterval { scheduler = startScheduler(every: schedulerInterval) }
        follower?.start(following: self, anchor: anchorFollower)
    }

    /// The working state of what `contents` holds: each key's material opened and checked, each
    /// access key's secret opened. Returns the re-seals a store migrated from schema 1 needs.
    ///
    /// - Parameter previous: the state before a shared store's load; a key whose record and
    ///   sealed material rows are what they were is taken from it as it is (opening every key's
    ///   material and parsing its policy again was most of the rest of a load's time).
    ///   With ``StoreContents/changed`` (a load from the change feed), the state is `previous`
    ///   with what changed taken out and put in again as loaded.
    static func liveState(_ contents: StoreContents, keys: StoreKeys, previous: EngineState? = nil) throws -> (EngineState, [StoreChange]) {
        let rootKey = keys.root
        var state = EngineState()
        if let delta = contents.changed {
            guard let previous else { throw StoreError("the store's changes were loaded without the state they change") }
            state = previous
            state.without(delta)
        }
        state.generation = contents.generation
        state.sealedMaterial.merge(contents.sealedMaterial) { $1 }
        var resealed: [StoreChange] = []
        for stored in contents.keys {
            var record = stored.migrated()
            if let previous, let live = previous.keys[record.identity], live.record == record,
               previous.sealedMaterial[record.identity] == contents.sealedMaterial[record.identity] {
                state.keys[record.identity] = live
                continue
            }
            let (material, reseals) = try Self.openMaterial(of: record, sealed: contents.sealedMaterial[record.identity] ?? [:],
                                                            legacyLabels: contents.legacyMaterialLabels, keys: keys)
            resealed += reseals
            try Self.identifyMaterial(&record, material, fingerprintKey: keys.fingerprint)
            state.keys[record.identity] = LiveKey(record: record, material: material)
        }
        for alias in contents.aliases {
            state.aliases[.init(account: alias.account, region: alias.region, name: alias.aliasName)] = alias
        }
        for account in contents.accounts { state.accounts[account.accountID] = account }
        for (key, sealed) in contents.accessKeys {
            guard let secret = try? rootKey.open(sealed, label: key.secretLabel, version: 0) else {
                throw StoreError("the secret of access key \(key.accessKeyID) does not open under the root key")
            }
            state.accessKeys[key.accessKeyID] = LiveAccessKey(record: key, secret: secret)
        }
        for grant in contents.grants {
            guard let key = grant.keyIdentity else { throw StoreError("grant \(grant.grantID) names no key ARN") }
            state.grants[key, default: [:]][grant.grantID] = grant
        }
        for identity in contents.identities { state.identities[identity.arn] = LiveIdentity(record: identity) }
        for (store, sealed) in contents.customKeyStores { state.customKeyStores[store.id] = (store, sealed) }
        return (state, resealed)
    }

    /// A key's material, opened and checked: each version's row opens under the key's identity
    /// (or, once after the migration from schema 1, under its key ID — then it is sealed again);
    /// a symmetric version's KeyMaterialId, in the MAC'ed record, must be the fingerprint of what
    /// opened. A missing row is refused unless the record says the material is gone (imported
    /// material deleted or expired: no expiration model left) or the key's material is a
    /// token's. Returns the material and the re-seals to write.
    static func openMaterial(of record: KeyRecord, sealed rows: [UInt32: [UInt8]], legacyLabels: Bool,
                             keys: StoreKeys) throws -> ([UInt32: KeyMaterial], [StoreChange]) {
        let rootKey = keys.root
        var material: [UInt32: KeyMaterial] = [:]
        var reseals: [StoreChange] = []
        for version in record.allVersions {
            // Imported material deleted (or expired) stays deleted: a row for it, put back by
            // whoever can write the store (material rows carry no MAC), is not opened.
            let deleted = record.origin == .external && version.expirationModel == nil
            guard !deleted, let sealed = rows[version.version] else {
                let mayBeGone = record.origin == .external ? version.expirationModel == nil : record.customKeyStoreID != nil
                if mayBeGone { continue }
                throw StoreError("key \(record.keyID) version \(version.version) has no material: the store was edited outside kmsd; refusing to open it")
            }
            let label = record.identity.materialLabel
            do {
                var bytes: SecretBytes
                if let opened = try? rootKey.open(sealed, label: label, version: version.version) {
                    bytes = opened
                } else {
                    guard legacyLabels else { throw StoreError("") }
                    bytes = try rootKey.open(sealed, label: record.keyID, version: version.version)
                    reseals.append(.resealMaterial(record.identity, version: version.version,
                                                   sealed: try rootKey.seal(bytes, label: label, version: version.version)))
                }
                if let expected = version.materialID, record.spec == .symmetricDefault {
                    guard try materialFingerprint(bytes, keyID: record.keyID, key: keys.fingerprint) == expected else { throw StoreError("") }
                }
                material[version.version] = try KeyMaterial(spec: record.spec, bytes: bytes)
            } catch {
                throw StoreError("the material of key \(record.keyID) version \(version.version) is not its own under the root key: refusing to open the store")
            }
        }
        return (material, reseals)
    }

    static let authenticatedRecordsOperation = "AuthenticateRecords"
    static let authenticatedStateOperation = "AuthenticateState"

    /// A store not marked as having MACs is either one written before records had them, or one
    /// whose marker was removed by someone who edited records and wants them MAC'ed as they are
    /// now. The audit trail tells them apart — only the root key writes it: it must verify whole,
    /// and hold no record that records were ever authenticated.
    private static func checkNeverAuthenticated(store: any KeyStore, chain: AuditChain) throws {
        try checkNever(authenticatedRecordsOperation, store: store, chain: chain, what: "its records were authenticated")
    }

    /// Refuses the store unless its trail verifies whole and holds no `operation` record (the
    /// record that a protection was switched on, whose evidence in the store is now missing).
    private static func checkNever(_ operation: String, store: any KeyStore, chain: AuditChain, what: String) throws {
        var previous = AuditChain.genesis
        var expected: Int64 = 1
        let marker = Array("\"operation\":\"\(operation)\"".utf8)
        for record in try store.auditRecords(after: 0) {
            guard record.sequence == expected, chain.mac(previous: previous, sequence: record.sequence, record: record.record) == record.mac else {
                throw StoreError("the store lacks the evidence that \(what), and its audit trail does not verify at record \(expected): refusing to open it")
            }
            if record.record.contains(bytes: marker) {
                throw StoreError("\(what) (audit record \(record.sequence)) but the store's evidence of it is gone: the store was edited outside kmsd; refusing to open it")
            }
            previous = record.mac
            expected += 1
        }
    }

    deinit {
        scheduler?.cancel()
        follower?.stop(wait: false)
        keyStoreConnections.closeAll()
        // Best effort: a clean shutdown loses no audit record.
        try? audit.flush()
    }

    /// A new store records a sealed check value; an existing one must open it under `rootKey`,
    /// or under `next` (the store was rotated to it). Returns the key that opens it.
    private static func checkRootKey(_ rootKey: RootKey, next: RootKey?, store: any KeyStore) throws -> RootKey {
        guard let sealed = try store.metadata("root_check") else {
            guard !rootKey.isDegenerate else { throw StoreError("the root key has every byte the same: not a key to make a store under") }
            let check = try rootKey.seal(try SecretBytes.random(count: 32), label: StoreKeys.checkLabel, version: 0)
            try store.apply([.putMetadata(name: "root_check", value: check)], audit: [])
            return rootKey
        }
        if StoreKeys.opensCheck(rootKey, sealed) { return rootKey }
        if let next, StoreKeys.opensCheck(next, sealed) { return next }
        throw StoreError("the root key does not match this key store (nothing was changed)"
                         + (next == nil ? "; if its root key was rotated, give the new one" : ", nor does the next root key"))
    }

    /// Calls `handler` when this instance can no longer follow its shared store (with why: the
    /// store unreachable, or a record in it that does not verify), and nil when it can again.
    public func onFollowProblem(_ handler: @escaping @Sendable (String?) -> Void) {
        follower?.reporter.withLock { $0 = handler }
    }

    /// Whether a cryptographic call may wait on a custom key store (a token or a proxy): the
    /// server then runs such calls off its event loop.
    public var usesCustomKeyStores: Bool { keyStoreConnections.anyConnected.load(ordering: .acquiring) }

    /// Writes pending audit records now (on shutdown, and before reading the trail).
    public func flushAudit() throws { try audit.flush() }

    /// Verifies the whole audit chain.
    public func verifyAudit() throws -> AuditVerification { try audit.verify() }

    /// Every audit record, in order (for `kmsd audit tail` and tests).
    public func auditRecords() throws -> [AuditRecord] {
        try audit.flush()
        return try store.auditRecords(after: 0).map { try $0.decoded() }
    }

    /// Records a request refused before it reached an operation (bad or unknown signature), so
    /// that the trail holds every call, not only the authenticated ones.
    /// What the request claims is capped, and such records are rate limited
    /// (``RejectedRequests``): unauthenticated input decides neither their size nor their number.
    public func auditRejectedRequest(operation: String, accessKeyID: String?, region: String, requestID: String, errorCode: String) {
        let (recorded, dropped) = rejectedRequests.admit(at: clock.now())
        guard recorded else { return }
        let caller = Caller(account: "", region: RejectedRequests.capped(region, limit: 32), principal: "unauthenticated", requestID: requestID)
        var record = newRecord(RejectedRequests.capped(operation, limit: 64), caller)
        record.errorCode = RejectedRequests.capped(errorCode, limit: 64)
        var notes = accessKeyID.map { ["access key \(RejectedRequests.capped($0, limit: 128))"] } ?? []
        if dropped > 0 { notes.append("\(dropped) refused requests before this one not recorded (rate limit)") }
        record.note = notes.isEmpty ? nil : notes.joined(separator: "; ")
        audit.append(record)
    }

    /// How many keys are in each state (Enabled, Disabled, PendingDeletion, ...), for metrics.
    public func keyCountsByState() -> [String: Int] {
        state.withLock { state in
            var counts: [String: Int] = [:]
            for key in state.keys.values { counts[key.record.state.rawValue, default: 0] += 1 }
            return counts
        }
    }

    /// Audit records written to memory and not yet to the store (the group commit's backlog).
    public var auditBacklog: Int { audit.backlog }

    /// Sets the request quotas (``RequestQuotas``); every account's buckets start full.
    public func setQuotas(_ new: RequestQuotas) { quotas.replace(new) }

    /// Throws ThrottlingException if `operation` is over its class's quota; the refusal is
    /// audited (at most ``RejectedRequests``' rate of them, the rest counted).
    ///
    /// A cryptographic call counts against the quota of the account that owns its key, as AWS
    /// counts it, not the caller's: the key named by ARN (`keyReference`), or the key a ciphertext
    /// names (`ciphertextBase64`, Decrypt's and ReEncrypt's blob) as Decrypt finds it.
    public func admit(_ operation: KMSOperation, caller: Caller, keyReference: String? = nil, ciphertextBase64: String? = nil) throws {
        let kind = operation.quotaClass
        guard quotas.limits(kind) else { return }
        let owner = kind == .management ? caller.account : keyOwner(keyReference, ciphertextBase64, caller: caller)
        try admit(kind, operationName: operation.rawValue, caller: caller, account: owner)
    }

    /// The account that owns the key a request names; the caller's when it names none of
    /// another's (a key ID or alias name is the caller's own; a blob whose key is not found is
    /// refused later, and counts against the caller).
    private func keyOwner(_ reference: String?, _ ciphertextBase64: String?, caller: Caller) -> String {
        if let reference, reference.hasPrefix("arn:") {
            let parts = reference.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false)
            if parts.count == 6, parts[4].count == 12, parts[4].allSatisfy(\.isASCII), parts[4].allSatisfy(\.isNumber) { return String(parts[4]) }
            return caller.account
        }
        guard reference == nil, let ciphertextBase64, ciphertextBase64.utf8.count <= 8192,
              let bytes = Data(base64Encoded: ciphertextBase64), let blob = try? CiphertextBlob(parsing: Array(bytes)) else { return caller.account }
        return state.withLock { $0.keys.find(blob.keyID, region: caller.region, preferring: caller.account)?.record.account } ?? caller.account
    }

    /// The same for an operation outside the KMS API (IAM and STS, counted as management).
    public func admit(_ kind: RequestQuotas.Class, operationName: String, caller: Caller) throws {
        try admit(kind, operationName: operationName, caller: caller, account: caller.account)
    }

    private func admit(_ kind: RequestQuotas.Class, operationName: String, caller: Caller, account: String) throws {
        let now = clock.now()
        guard !quotas.admit(account: account, kind, at: now) else { return }
        EngineMetrics.throttled(kind)
        let (recorded, dropped) = throttledRequests.admit(at: now)
        if recorded {
            var record = newRecord(operationName, caller)
            record.errorCode = KMSError.Code.throttling.rawValue
            record.note = (account == caller.account ? "over the account's" : "over the key owner's (\(account))") + " \(kind.rawValue) request quota"
                + (dropped > 0 ? "; \(dropped) throttled requests before this one not recorded (rate limit)" : "")
            audit.append(record)
        }
        throw KMSError(.throttling, "Rate exceeded")
    }

    // MARK: Running operations

    func newRecord(_ operation: String, _ caller: Caller, context: EncryptionContext? = nil) -> AuditRecord {
        AuditRecord(time: clock.now(), operation: operation, principal: caller.principal, account: caller.account,
                    region: caller.region, keyARN: nil, encryptionContext: context, requestID: caller.requestID,
                    errorCode: nil, userAgent: caller.userAgent, note: nil)
    }

    /// Runs a read-only or cryptographic operation on a snapshot of the state; audits the outcome
    /// through the group-committed buffer.
    /// - Parameter tracksUse: a cryptographic call, whose success GetKeyLastUsage reports.
    func perform<R>(_ operation: String, _ caller: Caller, context: EncryptionContext? = nil, tracksUse: Bool = false,
                    _ body: (inout AuditRecord, EngineState) throws -> R) throws -> R {
        var record = newRecord(operation, caller, context: context)
        var snapshot = state.withLock { $0 }
        do {
            try follower?.checkFresh()
            let result: R
            do {
                result = try body(&record, snapshot)
            } catch let missing as KMSError where Self.missingCodes.contains(missing.code) && follower != nil {
                // A key (or alias, grant, custom key store, user) another instance has just
                // made: if the store has moved, this call is answered again on what it holds now
                // (so a key is usable everywhere once CreateKey returns; a miss costs one query).
                try follow()
                let caughtUp = state.withLock { $0 }
                guard caughtUp.generation != snapshot.generation else { throw missing }
                record = newRecord(operation, caller, context: context)
                snapshot = caughtUp
                result = try body(&record, snapshot)
            }
            audit.append(record)
            if tracksUse { noteUse(record) }
            return result
        } catch {
            throw auditFailure(error, record: &record)
        }
    }

    func perform<R>(_ operation: KMSOperation, _ caller: Caller, context: EncryptionContext? = nil,
                    _ body: (inout AuditRecord, EngineState) throws -> R) throws -> R {
        try perform(operation.rawValue, caller, context: context, tracksUse: operation.isCryptographic, body)
    }

    func manage<R>(_ operation: KMSOperation, _ caller: Caller,
                   _ body: (inout AuditRecord, inout EngineState) throws -> (R, [StoreChange])) throws -> R {
        try manage(operation.rawValue, caller, body)
    }

    /// Runs a management operation: `body` edits a draft of the state and returns the store
    /// changes; they are committed with the audit record, then the draft becomes the state.
    ///
    /// In a shared store the commit is conditional on the store being at the draft's generation:
    /// if another instance changed it meanwhile, the store is loaded again and `body` drafts the
    /// change anew on what is there now (a key deleted there is not found here; a name taken
    /// there is taken here). After ``StoreFollower/optimisticAttempts`` such losses (many
    /// instances changing the store at once), the change holds the writers' turn from its
    /// draft to its commit: it cannot lose again, and the others wait that long.
    func manage<R>(_ operation: String, _ caller: Caller,
                   _ body: (inout AuditRecord, inout EngineState) throws -> (R, [StoreChange])) throws -> R {
        try management.withLock {
            var attempt = 1
            while true {
                var record = newRecord(operation, caller)
                do {
                    func attemptChange() throws -> R {
                        // Drafted on the store as it is now, not as the last poll saw it: a key
                        // another instance has just made is found, a name it has just taken is taken.
                        if follower != nil { try follow() }
                        var draft = state.withLock { $0 }
                        let (result, changes) = try body(&record, &draft)
                        let generation = try audit.commit(changes: changes, record: record, basedOn: follower == nil ? nil : draft.generation)
                        if follower != nil, !changes.isEmpty, let generation { draft.generation = generation }
                        install(draft)
                        nudgePeers(after: changes)
                        return result
                    }
                    guard attempt > StoreFollower.optimisticAttempts else { return try attemptChange() }
                    var result: R?
                    try store.holdingTurn { result = try attemptChange() }
                    return result!
                } catch let nothing as NothingToRecord {
                    throw nothing
                } catch is StaleStateError where attempt <= StoreFollower.optimisticAttempts {
                    // Not audited: the change did not happen, and is drafted again.
                    attempt += 1
                } catch {
                    throw auditFailure(error, record: &record)
                }
            }
        }
    }

    /// The refusals of something that does not exist, which a shared store's instance checks
    /// against the store before it answers them.
    static let missingCodes: Set<KMSError.Code> = [.notFound, .customKeyStoreNotFound, .noSuchEntity]

    /// Thrown by a management body that finds nothing left to do and nothing worth recording (a
    /// scheduled step another instance, or a cancellation, has made moot): no commit, no record.
    struct NothingToRecord: Error {}

    /// Asks a shared store where it is and, if another instance has changed it since this state,
    /// loads it again. Without the management lock: a change drafted meanwhile on the state being
    /// replaced is refused by the store (its generation moved) and drafted again; and a state
    /// only ever replaces an older one (``install(_:)``), so a load that raced this instance's own
    /// change cannot put back what that change replaced. A management operation in progress
    /// (waiting for the writers' turn, or holding it) therefore never keeps this instance from
    /// confirming its state. The store must still hold the last audit record this instance saw
    /// in it (``KeyStore/position()``).
    /// - Returns: whether it loaded the store.
    @discardableResult
    func follow() throws -> Bool {
        guard let follower else { return false }
        guard !audit.rootKeyRetired else { throw StoreError(AuditLog.retiredMessage) }
        let asked = DispatchTime.now().uptimeNanoseconds
        if rotatingRootKey.load(ordering: .acquiring) {
            follower.confirm(asked: asked)
            return false
        }
        let position: StorePosition
        do { position = try store.position() } catch {
            // Another instance may have rotated the root key: taken up if this one was given
            // the new key, and said so if not (rather than "edited outside kmsd").
            try adoptRotatedRootKey(failure: error)
            position = try store.position()
        }
        // Before any load, which may take a while: an announced rotation pauses this instance
        // within one poll.
        noticeAnnouncedRotation(position.announcement, storeMoved: position.generation > state.withLock({ $0.generation }))
        var loaded = false
        try loading.withLock {
            guard position.generation > state.withLock({ $0.generation }) else { return }
            let contents = try store.loadChanges(stateAt: state.withLock { $0.generation })
            // A missing digest is refused here whatever the trail says: only a new store's first
            // open writes the first one, and that was this instance's open or another's, before.
            guard !contents.stateDigestMissing else { throw StoreError("the store's state digest is missing: it was removed outside kmsd") }
            let next: EngineState
            do { (next, _) = try Self.liveState(contents, keys: keys.withLock { $0 }, previous: state.withLock { $0 }) } catch {
                store.distrustLastLoad()
                throw error
            }
            loaded = install(next)
        }
        if loaded {
            StoreFollower.reloads.increment()
            reconnectCustomKeyStores()
        }
        follower.confirm(asked: asked)
        return loaded
    }

    /// Makes `next` the state unless the state is already at a later generation (a shared store:
    /// another thread installed a newer load, or a change of this instance's that came after).
    @discardableResult
    func install(_ next: EngineState) -> Bool {
        state.withLock { current in
            guard next.generation >= current.generation else { return false }
            current = next
            return true
        }
    }

    /// Stops the background work (the scheduler, a shared store's follower) and waits for a run
    /// in progress to end: before the process exits, so that none runs while it tears down.
    public func stopBackgroundWork() {
        scheduler?.cancel()
        follower?.stop()
        peerLink.stop()
    }

    /// Records a refused or failed call and returns what the caller sees: KMS errors as they
    /// are, anything else (a store failure) as KMSInternalException.
    private func auditFailure(_ error: any Error, record: inout AuditRecord) -> KMSError {
        let failure = error as? KMSError ?? KMSError(.internalError, "the key service failed: \(error)")
        record.errorCode = failure.code.rawValue
        audit.append(record)
        return failure
    }
}
