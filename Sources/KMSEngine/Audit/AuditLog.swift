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
    private let chain: AuditChain
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
        self.chain = chain
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
        try writer.withLock { chainState in
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
            do {
                let stored = try store.apply(changes, basedOn: generation) { storeHead in
                    next = chainState
                    if let storeHead {
                        guard storeHead.sequence >= chainState.lastSequence else {
                            throw StoreError("the store's audit trail ends at record \(storeHead.sequence), before record \(chainState.lastSequence) that this instance has seen: records were cut off or the store was rolled back; refusing to write")
                        }
                        next.lastSequence = storeHead.sequence
                        next.lastMAC = storeHead.mac
                    }
                    sealed = []
                    for bytes in encoded {
                        next.lastSequence += 1
                        next.lastMAC = chain.mac(previous: next.lastMAC, sequence: next.lastSequence, record: bytes)
                        sealed.append(SealedAuditRecord(sequence: next.lastSequence, record: bytes, mac: next.lastMAC))
                    }
                    return AuditAppend(records: sealed, head: sealed.isEmpty ? nil : chain.head(sequence: next.lastSequence, mac: next.lastMAC))
                }
                chainState = next
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
        guard let (sequence, mac) = chain.parseHead(bytes) else {
            throw StoreError("the audit anchor \(anchor.path) does not verify under the root key (changed, or from another store)")
        }
        guard sequence > 0 else { return }
        guard let record = try store.auditRecords(after: sequence - 1).first, record.sequence == sequence, record.mac == mac else {
            throw StoreError("the audit trail ends before its anchor \(anchor.path) (record \(sequence), store's last \(last?.sequence ?? 0)): records were cut off or the store was rolled back; refusing to open the store")
        }
    }

    /// Walks the stored chain from the first record and reports the first break.
    func verify() throws -> AuditVerification {
        try flush()
        return chain.verify(try store.auditRecords(after: 0), head: try store.metadata("audit_head"))
    }
}
