import Dispatch
import Foundation
import KMSStore

/// Keeps a standby's audit anchor up with the trail the serving kmsd writes, so that the anchor
/// still guards against a rollback when the standby takes over.
///
/// Each instance keeps its own anchor (on its own machine). Without following, a standby's
/// anchor would name the head of when it last served: whoever can write the database could then
/// put back any older, consistent copy of the store, end the serving instance's session, and the
/// standby would take the copy over as current. While it waits, the standby reads the records
/// written since its anchor, checks that they chain on from it under the root key, and moves its
/// anchor to the last one. What is left is the records of the last half second, the follow
/// interval; the chain itself cannot be forged without the root key.
///
/// The chain is the store's as its metadata says under the root key, or under the next root
/// key once the store was rotated to it (``StoreKeys``): read again whenever that changes.
final class AnchorFollower: @unchecked Sendable {
    private let location: StoreLocation
    private let anchor: AuditAnchor
    private let roots: [RootKey]
    private var chain: (check: [UInt8], history: [UInt8]?, chain: AuditChain)?
    private var connection: (any SQLConnection)?
    private var lastRun = DispatchTime(uptimeNanoseconds: 0)
    static let interval: UInt64 = 500_000_000

    /// - Parameter roots: the root key, and the key the store may be rotated to.
    init(location: StoreLocation, anchor: AuditAnchor, roots: [RootKey]) {
        self.location = location
        self.anchor = anchor
        self.roots = roots
    }

    /// The store's chain, under whichever of `roots` opens its check; nil if none does.
    private func storeChain(_ database: any SQLConnection) throws -> AuditChain? {
        guard let check = try database.metadata("root_check") else { return nil }
        let history = try database.metadata(StoreKeys.historyName)
        if let chain, chain.check == check, chain.history == history { return chain.chain }
        guard let root = roots.first(where: { StoreKeys.opensCheck($0, check) }) else {
            // Rotated to a key this instance was not given: its anchor says so for good (no
            // later start under the old key takes an older copy of the store).
            if let chain, let bytes = try anchor.read(), let marked = chain.chain.retired(bytes) { try anchor.write(marked) }
            return nil
        }
        let keys = try StoreKeys.load(root: root, metadata: database.metadata)
        let made = try keys.chain()
        chain = (check, history, made)
        return made
    }

    /// Follows the trail if the interval has passed; failures (the database unreachable, a
    /// record that does not chain on) leave the anchor where it is, for the open to judge.
    func followIfDue() {
        let now = DispatchTime.now()
        guard now.uptimeNanoseconds >= lastRun.uptimeNanoseconds + Self.interval else { return }
        lastRun = now
        do { try follow() } catch { connection = nil }
    }

    func follow() throws {
        let database = try connection ?? open()
        connection = database
        guard let chain = try storeChain(database), let bytes = try anchor.read(), bytes.count == 72,
              let (sequence, mac) = chain.parseHead(bytes, earlierSegments: true), sequence > 0 else { return }
        let rows = try database.query("SELECT seq, record, mac FROM audit WHERE seq >= ?1 ORDER BY seq LIMIT 100000", [.integer(sequence)])
        // The anchored record itself first, as anchored: a trail changed under it is the
        // open's to refuse, not this to paper over.
        guard let first = rows.first, first[0].integer == sequence, first[2].blob == mac else { return }
        var (head, previous) = (sequence, mac)
        for row in rows.dropFirst() {
            guard let next = row[0].integer, next == head + 1, let record = row[1].blob, let recordMAC = row[2].blob,
                  chain.mac(previous: previous, sequence: next, record: record) == recordMAC else { break }
            (head, previous) = (next, recordMAC)
        }
        if head > sequence { try anchor.write(chain.head(sequence: head, mac: previous)) }
    }

    private func open() throws -> any SQLConnection {
        switch location {
        case let .sqlite(path): return try SQLiteDatabase(path: path, readOnly: true)
        case let .postgres(url): return try PostgresDatabase(url: url)
        }
    }
}
