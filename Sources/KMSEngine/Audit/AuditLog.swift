import Dispatch
import Foundation
import KMSStore
import Synchronization

/// The audit trail: records chained in order and written in batches.
///
/// Cryptographic calls append to a memory buffer (one short lock) and a background flush writes
/// the buffer every ``flushInterval`` in one transaction (group commit): a crash loses at most the
/// records of that last interval, all of them cryptographic-call records. A management change
/// writes its own record in the same transaction as the change, after flushing what was pending,
/// so the trail never misses a change that happened nor records one that did not.
final class AuditLog: Sendable {
    private struct Chain {
        var lastSequence: Int64
        var lastMAC: [UInt8]
        /// An empty buffer with capacity, swapped with `pending` at each flush: a new large array
        /// per flush cost more (fresh pages from the kernel) than encoding the records.
        var spare: [AuditRecord] = []
    }

    static let flushInterval = DispatchTimeInterval.milliseconds(100)
    private let store: any KeyStore
    /// The chain records are MAC'ed under: replaced when the root key rotates (read and
    /// replaced under `writer`).
    private let chainKeys: Mutex<AuditChain>
    private var chain: AuditChain { chainKeys.withLock { $0 } }
    /// The head kept outside the store, if the engine was given a place for it.
    private let anchor: AuditAnchor?
    /// Records not yet written. Appends hold this lock only to push.
    private let pending = Mutex<[AuditRecord]>([])
    /// Serializes writers, so that sequence numbers and MACs follow commit order. Lock order:
    /// `writer` before `pending`.
    private let writer: Mutex<Chain>
    /// `nonisolated(unsafe)`: a dispatch source is thread-safe; it is only resumed and cancelled.
    private nonisolated(unsafe) let timer: DispatchSourceTimer

    /// - Throws: ``StoreError`` when the store no longer holds the record `anchor` names (records
    ///   cut off the end, or the store rolled back to an earlier copy).
    /// - Parameter createAnchor: make a missing anchor for a store that has a trail already (the
    ///   first start with an anchor: `kmsd admin anchor-audit`); otherwise that is refused, as an
    ///   anchor removed to hide a rollback.
    init(store: any KeyStore, chain: AuditChain, last: SealedAuditRecord?, anchor: AuditAnchor? = nil, createAnchor: Bool = false) throws {
        self.store = store
        self.chainKeys = Mutex(chain)
        self.anchor = anchor
        if let anchor { try Self.check(anchor, chain: chain, store: store, last: last, create: createAnchor) }
        self.writer = Mutex(Chain(lastSequence: last?.sequence ?? 0, lastMAC: last?.mac ?? AuditChain.genesis))
        self.timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "kmsd.audit.flush"))
        timer.schedule(deadline: .now() + Self.flushInterval, repeating: Self.flushInterval)
        timer.setEventHandler { [weak self] in try? self?.flush() }
        timer.resume()
    }

    deinit { timer.cancel() }

    /// Records waiting beyond which the caller writes the batch itself: if the background flush
    /// cannot keep up, callers slow down instead of the buffer (and the crash loss) growing.
    static let backlogLimit = 20_000

    /// Queues a record for the next batch.
    func append(_ record: AuditRecord) {
        let backlog = pending.withLock { records in
            records.append(record)
            return records.count
        }
        if backlog >= Self.backlogLimit { try? flush() }
    }

    /// Records appended and not yet written.
    var backlog: Int { pending.withLock { $0.count } }

    /// Writes everything pending now.
    func flush() throws {
        try commit(changes: [], record: nil)
    }

    /// Writes what is pending, then `record`, together with `changes`, in one transaction.
    ///
    /// In a shared store the records chain from the head the store holds when this instance's
    /// turn comes (other instances append too); a head behind the last record this instance
    /// wrote or saw means records were cut off or the store rolled back, and nothing is written.
    /// - Parameter generation: the state `changes` were drafted on (``KeyStore/apply(_:basedOn:audit:)``).
    /// - Returns: the store's generation after the commit.
    @discardableResult
    func commit(changes: [StoreChange], record: AuditRecord?, basedOn generation: Int64? = nil) throws -> Int64? {
        try writer.withLock { chainState in try commit(&chainState, changes: changes, record: record, basedOn: generation, rotation: nil) }
    }

    /// A rotation of the root key, as the trail sees it: the store's records re-authenticated
    /// under `authenticator`, and a new chain segment that begins with the rotation's own record.
    struct Rotation {
        var authenticator: RecordAuthenticator
        /// The chain from the given sequence number (the rotation record's) on, and the store
        /// metadata that says so (written in the same transaction).
        var chainFrom: (Int64) throws -> (AuditChain, [(name: String, value: [UInt8])])
    }

    /// Writes what is pending under the current chain, then `record` as the first record of the
    /// chain `rotation` makes, with `changes`, all in one transaction that re-authenticates the
    /// store's records; from then on the trail is chained under the new chain.
    @discardableResult
    func commit(changes: [StoreChange], record: AuditRecord, basedOn generation: Int64?, rotation: Rotation) throws -> Int64? {
        try writer.withLock { chainState in try commit(&chainState, changes: changes, record: record, basedOn: generation, rotation: rotation) }
    }

    /// Takes up the chain another instance rotated the store's root key to, after `switchStore`
    /// (the store's records under the new key), both while no commit is in progress: a commit
    /// that waited behind the rotation must not find the store under the new key and chain its
    /// records under the old one.
    func adopt(_ chain: AuditChain, switchingStore switchStore: () throws -> Void) throws {
        try writer.withLock { _ in
            try switchStore()
            chainKeys.withLock { $0 = chain }
        }
    }

    /// Set once this instance saw the store's root key rotated to a key it was not given: it
    /// writes nothing more under the old one (a store that still takes it is an older copy).
    private let retired = Atomic<Bool>(false)
    var rootKeyRetired: Bool { retired.load(ordering: .acquiring) }

    /// Stops writing, and marks the audit anchor (``AuditChain/retired(_:)``) so that no later
    /// start opens the store under this root key again.
    func retireRootKey() {
        writer.withLock { _ in
            retired.store(true, ordering: .releasing)
            guard let anchor, let bytes = try? anchor.read(), let marked = chain.retired(bytes) else { return }
            try? anchor.write(marked)
        }
    }

    private func commit(_ chainState: inout Chain, changes: [StoreChange], record: AuditRecord?, basedOn generation: Int64?,
                        rotation: Rotation?) throws -> Int64? {
        guard !rootKeyRetired else { throw StoreError(Self.retiredMessage) }
        var batch = chainState.spare
        chainState.spare = []
        pending.withLock { swap(&$0, &batch) }
        defer {
            batch.removeAll(keepingCapacity: true)
            chainState.spare = batch
        }
        if let record { batch.append(record) }
        guard !batch.isEmpty || !changes.isEmpty else { return nil }
        let encoded = batch.map(\.canonicalJSON)
        var next = chainState
        var sealed: [SealedAuditRecord] = []
        var chain = self.chain
        do {
            let stored = try store.apply(changes, basedOn: generation, reauthenticating: rotation?.authenticator) { storeHead in
                next = chainState
                if let storeHead {
                    guard storeHead.sequence >= chainState.lastSequence else {
                        throw StoreError("the store's audit trail ends at record \(storeHead.sequence), before record \(chainState.lastSequence) that this instance has seen: records were cut off or the store was rolled back; refusing to write")
                    }
                    next.lastSequence = storeHead.sequence
                    next.lastMAC = storeHead.mac
                }
                sealed = []
                chain = self.chain
                var metadata: [(name: String, value: [UInt8])] = []
                for (index, bytes) in encoded.enumerated() {
                    next.lastSequence += 1
                    if let rotation, index == encoded.count - 1 { (chain, metadata) = try rotation.chainFrom(next.lastSequence) }
                    next.lastMAC = chain.mac(previous: next.lastMAC, sequence: next.lastSequence, record: bytes)
                    sealed.append(SealedAuditRecord(sequence: next.lastSequence, record: bytes, mac: next.lastMAC))
                }
                return AuditAppend(records: sealed, head: sealed.isEmpty ? nil : chain.head(sequence: next.lastSequence, mac: next.lastMAC),
                                   metadata: metadata)
            }
            chainState = next
            if rotation != nil { chainKeys.withLock { $0 = chain } }
            // After the commit: the anchor may lag the store after a crash, never lead it. A
            // failed write leaves it lagging (the next commit writes it again); the committed
            // change stands, as the store has it.
            if let anchor, !sealed.isEmpty { try? anchor.write(chain.head(sequence: next.lastSequence, mac: next.lastMAC)) }
            return stored
        } catch {
            // Nothing was written: put the crypto-call records back for the next attempt.
            let requeue = record == nil ? batch : Array(batch.dropLast())
            pending.withLock { $0.insert(contentsOf: requeue, at: 0) }
            throw error
        }
    }

    /// The anchor against the store: the record it names must be there, with its MAC. A new
    /// store gets its anchor with its first records; an existing trail without one is refused
    /// unless `create` says this is its first start with one.
    private static func check(_ anchor: AuditAnchor, chain: AuditChain, store: any KeyStore, last: SealedAuditRecord?, create: Bool) throws {
        guard let bytes = try anchor.read() else {
            guard let last else { return }
            guard create else {
                throw StoreError("the store has an audit trail but there is no audit anchor at \(anchor.path): if it never had one, create it with `kmsd admin anchor-audit`; if it had one, it was removed (to hide a rollback?): refusing to open the store")
            }
            try anchor.write(chain.head(sequence: last.sequence, mac: last.mac))
            return
        }
        guard let (sequence, mac) = chain.parseHead(bytes, earlierSegments: true) else {
            throw StoreError("the audit anchor \(anchor.path) does not verify under the root key (changed, or from another store)")
        }
        guard !chain.retiresCurrentKey(bytes) else {
            throw StoreError("this instance saw the store's root key rotated away from the key it opens this store with (its audit anchor "
                             + "\(anchor.path) says so): a store that opens under that key is an older copy put back; open the store under its new root key")
        }
        guard sequence > 0 else { return }
        guard let record = try store.auditRecords(after: sequence - 1).first, record.sequence == sequence, record.mac == mac else {
            throw StoreError("the audit trail ends before its anchor \(anchor.path) (record \(sequence), store's last \(last?.sequence ?? 0)): records were cut off or the store was rolled back; refusing to open the store")
        }
    }

    static let retiredMessage = "the store's root key was rotated (by another instance) to a key this instance was not given: "
        + "restart it with the new root key as its root key (or, before a rotation, give instances the next one: --next-root-key-*)"

    /// Walks the stored chain from the first record and reports the first break.
    func verify() throws -> AuditVerification {
        try flush()
        return chain.verify(try store.auditRecords(after: 0), head: try store.metadata("audit_head"))
    }
}
