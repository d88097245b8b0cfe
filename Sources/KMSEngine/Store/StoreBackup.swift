import Foundation
import KMSStore

/// `kmsd backup` and `kmsd restore`: every row of a store, copied as it is — sealed material,
/// records with their MACs, the sealed state digest, the audit trail — so a restored store
/// opens under the same root key and verifies exactly as the original did. Nothing in a backup
/// is in the clear but what the store itself keeps in the clear (record JSON, audit records).
///
/// A backup is one consistent snapshot (a read transaction: SQLite's WAL snapshot, PostgreSQL's
/// REPEATABLE READ), taken beside a running kmsd without its lock. Either backend restores
/// either's backup, so it is also the way from SQLite to PostgreSQL and back.
///
/// The format: JSON lines. A header `{"format":"kmsd-backup-1","schema":"2","rows":N}`, then one
/// line per row, `{"t":TABLE,"r":[values]}` (a blob as `{"b":BASE64}`), then `{"end":N}`: a
/// backup cut short is refused whole.
public enum StoreBackup {
    public static let format = "kmsd-backup-1"

    /// Every table and its columns, in the order a restore inserts them (what a row refers to
    /// comes first).
    static let tables: [(name: String, columns: [String])] = [
        ("meta", ["name", "value"]),
        ("accounts", ["account_id", "record", "mac"]),
        ("keys", ["account", "region", "key_id", "record", "mac"]),
        ("key_material", ["account", "region", "key_id", "version", "sealed"]),
        ("aliases", ["account", "region", "alias_name", "target_key_id", "record", "mac"]),
        ("access_keys", ["access_key_id", "account", "record", "sealed_secret", "mac"]),
        ("grants", ["grant_id", "key_id", "record", "mac"]),
        ("identities", ["arn", "account", "record", "mac"]),
        ("custom_key_stores", ["id", "account", "record", "sealed_secret", "mac"]),
        ("audit", ["seq", "record", "mac"]),
    ]

    /// Columns of bytes: a value restored into one is bytes, whatever type an SQLite file held
    /// it as (PostgreSQL's bytea takes nothing else).
    static let blobColumns = Set(["meta.value", "key_material.sealed", "access_keys.sealed_secret", "custom_key_stores.sealed_secret",
                                  "audit.record"] + tables.filter { $0.columns.contains("mac") }.map { $0.name + ".mac" })

    public struct Summary: Sendable, CustomStringConvertible {
        public var rows: [String: Int] = [:]
        public var description: String {
            tables.map { "\($0.name) \(rows[$0.name] ?? 0)" }.joined(separator: ", ")
        }
    }

    /// Writes the backup of the store at `location` to `path`, created with mode 0600 (never
    /// over an existing file) and synced before it returns.
    public static func backup(_ location: StoreLocation, to path: String) throws -> Summary {
        let database: any SQLConnection
        let begin: String
        switch location {
        case let .sqlite(file):
            guard FileManager.default.fileExists(atPath: file) else { throw StoreError("no key store at \(file)") }
            database = try SQLiteDatabase(path: file, readOnly: true)
            begin = "BEGIN"
        case let .postgres(url):
            database = try PostgresDatabase(url: url)
            begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        }
        try database.execute(begin)
        defer { try? database.execute("COMMIT") }
        guard let schema = try database.query("SELECT value FROM meta WHERE name = 'schema'").first?.first?.blob,
              schema == Array(String(RelationalKeyStore.schemaVersion).utf8) else {
            throw StoreError("\(location) is not a key store of schema \(RelationalKeyStore.schemaVersion) (open it with kmsd once to bring it up to date)")
        }
        var lines: [[UInt8]] = [], summary = Summary()
        for (table, columns) in tables {
            let rows = try database.query("SELECT \(columns.joined(separator: ", ")) FROM \(table)")
            summary.rows[table] = rows.count
            for row in rows {
                lines.append(try JSONSerialization.data(withJSONObject: ["t": table, "r": row.map(encode)], options: [.sortedKeys]).map { $0 })
            }
        }
        let header = try JSONSerialization.data(withJSONObject: ["format": format, "schema": String(RelationalKeyStore.schemaVersion),
                                                                 "rows": lines.count], options: [.sortedKeys])
        let end = try JSONSerialization.data(withJSONObject: ["end": lines.count])
        try AtomicWrite.create(path, lines: [Array(header)] + lines + [Array(end)])
        return summary
    }

    /// Restores the backup at `path` into a new store at `location` (an SQLite file that does not
    /// exist yet, or a PostgreSQL database without a key store), in one transaction.
    public static func restore(_ path: String, into location: StoreLocation) throws -> Summary {
        guard let data = FileManager.default.contents(atPath: path) else { throw StoreError("cannot read \(path)") }
        let lines = data.split(separator: 0x0a)
        guard let first = lines.first, let header = try? JSONSerialization.jsonObject(with: Data(first)) as? [String: Any],
              header["format"] as? String == format else {
            throw StoreError("\(path) is not a kmsd backup (\(format))")
        }
        guard header["schema"] as? String == String(RelationalKeyStore.schemaVersion) else {
            throw StoreError("\(path) is a backup of schema \(header["schema"] ?? "?"); this kmsd restores schema \(RelationalKeyStore.schemaVersion)")
        }
        let count = header["rows"] as? Int ?? -1
        guard lines.count == count + 2, let last = lines.last,
              let end = try? JSONSerialization.jsonObject(with: Data(last)) as? [String: Any], end["end"] as? Int == count else {
            throw StoreError("\(path) is cut short or has lines added (its header says \(count) rows): nothing restored")
        }
        let known = Dictionary(uniqueKeysWithValues: tables.map { ($0.name, $0.columns) })
        var rows: [(table: String, values: [SQLValue])] = [], summary = Summary()
        for line in lines.dropFirst().dropLast() {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                  let table = object["t"] as? String, let columns = known[table], let values = object["r"] as? [Any], values.count == columns.count else {
                throw StoreError("\(path) has a malformed row: nothing restored")
            }
            rows.append((table, try zip(columns, values).map { try decode($1, blob: blobColumns.contains(table + "." + $0)) }))
            summary.rows[table, default: 0] += 1
        }
        switch location {
        case let .sqlite(file):
            guard !FileManager.default.fileExists(atPath: file) else { throw StoreError("\(file) exists: kmsd restore makes a new store") }
        case let .postgres(url):
            let database = try PostgresDatabase(url: url)
            guard try database.query("SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'meta'").isEmpty else {
                throw StoreError("\(location) holds a key store already: kmsd restore makes a new store")
            }
        }
        // The store's own open makes the schema and takes the writer lock for the restore. A
        // restore that fails takes the schema away again, so that it can simply be run again.
        do {
            let store = try RelationalKeyStore(location: location)
            do { try store.insertRaw(rows, columns: known) } catch {
                try? store.dropTables()
                throw error
            }
        } catch {
            if case let .sqlite(file) = location {
                for suffix in ["", "-wal", "-shm", "-journal", ".lock"] { unlink(file + suffix) }
            }
            throw error
        }
        return summary
    }

    private static func encode(_ value: SQLValue) -> Any {
        switch value {
        case .null: return NSNull()
        case let .integer(number): return number
        case let .real(number): return number
        case let .text(text): return text
        case let .blob(bytes): return ["b": Data(bytes).base64EncodedString()]
        }
    }

    private static func decode(_ value: Any, blob: Bool) throws -> SQLValue {
        switch value {
        case is NSNull: return .null
        case let object as [String: Any]:
            guard let text = object["b"] as? String, let bytes = Data(base64Encoded: text) else { throw StoreError("a malformed blob in the backup") }
            return .blob(Array(bytes))
        case let text as String: return blob ? .blob(Array(text.utf8)) : .text(text)
        default:
            if let number = value as? Int64 { return .integer(number) }
            if let number = value as? Double { return .real(number) }
            throw StoreError("a value of unknown type in the backup")
        }
    }
}

/// A new file written whole with its final mode, never over an existing one.
enum AtomicWrite {
    static func create(_ path: String, lines: [[UInt8]]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw StoreError("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        for line in lines { bytes += line + [0x0a] }
        var done = 0
        while done < bytes.count {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { throw StoreError("cannot write \(path): \(String(cString: strerror(errno)))") }
            done += written
        }
        guard fsync(fd) == 0 else { throw StoreError("cannot sync \(path): \(String(cString: strerror(errno)))") }
    }
}
