import Foundation
import KMSStore

/// Reads the audit trail of a store that another process (kmsd) owns: read-only, without the
/// store's lock, seeing every committed record — `kmsd audit tail` while kmsd runs, `--follow`
/// included. It does not verify the chain (that needs the root key: `kmsd audit verify`).
public final class AuditReader {
    private let database: any SQLConnection

    /// `path`: an SQLite file, or a `postgres://` URI (a session of its own, taking no lock).
    public init(path: String) throws {
        switch StoreLocation(path) {
        case let .sqlite(path):
            guard FileManager.default.fileExists(atPath: path) else { throw StoreError("no key store at \(path)") }
            database = try SQLiteDatabase(path: path, readOnly: true)
        case let .postgres(url):
            let postgres = try PostgresDatabase(url: url)
            try postgres.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            database = postgres
        }
    }

    /// The records after sequence number `sequence`, in order, with their sequence numbers.
    public func records(after sequence: Int64) throws -> [(sequence: Int64, record: AuditRecord)] {
        try database.query("SELECT seq, record, mac FROM audit WHERE seq > ?1 ORDER BY seq", [.integer(sequence)]).map { row in
            guard let seq = row[0].integer, let bytes = row[1].blob ?? row[1].text.map({ Array($0.utf8) }) else {
                throw StoreError("malformed audit row")
            }
            return (seq, try SealedAuditRecord(sequence: seq, record: bytes, mac: []).decoded())
        }
    }

    /// Verifies the whole chain under `rootKey`, as it stands in one snapshot, beside the kmsd
    /// instances that write it (`kmsd audit verify` while they run); and, given an audit anchor,
    /// that the trail still holds the record it names (a store put back to an older copy, or
    /// forked from one, verifies as a chain but not against the anchor). The store's records are
    /// not checked here: the instances check them at every load.
    /// - Throws: ``StoreError`` if `rootKey` is not the store's, or the anchor does not verify.
    public func verify(rootKey: RootKey, anchorPath: String? = nil) throws -> AuditVerification {
        try database.snapshot {
            guard let check = try database.metadata("root_check"), StoreKeys.opensCheck(rootKey, check) else {
                throw StoreError("the root key does not match this key store (if its root key was rotated, give the new one)")
            }
            // The chain's earlier segments, if the root key was ever rotated.
            let chain = try StoreKeys.load(root: rootKey, metadata: database.metadata).chain()
            let anchored = try anchorPath.flatMap { path -> (Int64, [UInt8])? in
                guard let bytes = try AuditAnchor(path: path).read() else { return nil }
                guard let head = chain.parseHead(bytes, earlierSegments: true) else {
                    throw StoreError("the audit anchor \(path) does not verify under the root key")
                }
                return head
            }
            let records = try database.query("SELECT seq, record, mac FROM audit ORDER BY seq").map { row in
                guard let seq = row[0].integer else { throw StoreError("malformed audit row") }
                func bytes(_ value: SQLValue) -> [UInt8] { value.blob ?? value.text.map { Array($0.utf8) } ?? [] }
                return SealedAuditRecord(sequence: seq, record: bytes(row[1]), mac: bytes(row[2]))
            }
            let verification = chain.verify(records, head: try database.metadata("audit_head"))
            if let (sequence, mac) = anchored, sequence > 0, verification.isIntact,
               !records.contains(where: { $0.sequence == sequence && $0.mac == mac }) {
                return AuditVerification(verifiedCount: verification.verifiedCount, problem: "the trail no longer holds record \(sequence) as its anchor \(anchorPath ?? "") names it (the store's last is \(records.last?.sequence ?? 0)): records were cut off, or the store was rolled back")
            }
            return verification
        }
    }

    /// The key IDs an alias name (`alias/...`) points at, in any account and region.
    public func keyIDs(forAlias name: String) throws -> [String] {
        try database.query("SELECT target_key_id FROM aliases WHERE alias_name = ?1", [.text(name)]).compactMap { $0[0].text }
    }
}
