import CSQLite
#if canImport(Glibc)
import Glibc
#endif

/// One SQLite connection: the only file that calls the sqlite3 C API.
///
/// Not thread-safe on its own: the key store serializes every use behind one lock (SQLite
/// allows one writer at a time anyway). Opened in WAL mode with `synchronous=FULL`, so a
/// transaction that returned is on disk, and a crash at any point leaves the last committed state.
public final class SQLiteDatabase: SQLConnection {
    public typealias Value = SQLValue
    public let dialect = SQLDialect.sqlite

    private let handle: OpaquePointer
    private var statements: [String: OpaquePointer] = [:]
    public let path: String

    /// `readOnly`: a reader beside the process that owns the store (`kmsd audit tail` while
    /// kmsd runs): WAL mode lets it read committed transactions without a lock on the store.
    public init(path: String, readOnly: Bool = false) throws {
        var handle: OpaquePointer?
        // A new store is created 0600 before SQLite sees it (SQLite would create it with the
        // umask's mode, and gives its journal files the database's mode): sealed material and
        // an audit trail of who used which key are no one else's to read.
        if !readOnly {
            let created = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if created >= 0 { close(created) }
        }
        let flags = (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX
        let status = sqlite3_open_v2(path, &handle, flags, nil)
        guard status == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(handle)
            throw StoreError("cannot open \(path): \(message)")
        }
        self.handle = handle
        self.path = path
        sqlite3_busy_timeout(handle, 5000)
        // A store file may have been written by someone else: nothing in its schema (a trigger,
        // a view's function) runs with kmsd's trust.
        _ = CSQLite_defensive(handle)
        try execute("PRAGMA trusted_schema=OFF")
        if readOnly { return }
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA synchronous=FULL")
        try execute("PRAGMA foreign_keys=ON")
        // Deleted rows (purged key material) are overwritten, not left in free pages.
        try execute("PRAGMA secure_delete=ON")
    }

    deinit {
        for statement in statements.values { sqlite3_finalize(statement) }
        sqlite3_close_v2(handle)
    }

    /// Runs SQL without parameters or results (schema, pragmas, BEGIN/COMMIT).
    public func execute(_ sql: String) throws {
        var error: UnsafeMutablePointer<CChar>?
        guard sqlite3_exec(handle, sql, nil, nil, &error) == SQLITE_OK else {
            let message = error.map { String(cString: $0) } ?? "unknown error"
            sqlite3_free(error)
            throw StoreError("\(message) in: \(sql.prefix(80))")
        }
    }

    /// Runs one statement with `arguments` bound to `?1, ?2, ...`; returns every result row.
    @discardableResult
    public func query(_ sql: String, _ arguments: [Value] = []) throws -> [SQLRow] {
        let statement = try prepared(sql)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        for (index, argument) in arguments.enumerated() {
            let position = Int32(index + 1)
            let status: Int32
            switch argument {
            case .null: status = sqlite3_bind_null(statement, position)
            case let .integer(value): status = sqlite3_bind_int64(statement, position, value)
            case let .real(value): status = sqlite3_bind_double(statement, position, value)
            case let .text(value): status = sqlite3_bind_text(statement, position, value, -1, CSQLite_transient())
            case let .blob(value):
                status = value.withUnsafeBytes {
                    sqlite3_bind_blob(statement, position, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32($0.count), CSQLite_transient())
                }
            }
            guard status == SQLITE_OK else { throw error("bind") }
        }
        var rows: [SQLRow] = []
        while true {
            let status = sqlite3_step(statement)
            if status == SQLITE_DONE { break }
            guard status == SQLITE_ROW else { throw error("step") }
            rows.append(SQLRow((0..<sqlite3_column_count(statement)).map { column(statement, $0) }))
        }
        return rows
    }


    private func prepared(_ sql: String) throws -> OpaquePointer {
        if let statement = statements[sql] { return statement }
        var statement: OpaquePointer?
        guard sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil) == SQLITE_OK,
              let statement
        else { throw error("prepare") }
        statements[sql] = statement
        return statement
    }

    private func column(_ statement: OpaquePointer, _ index: Int32) -> Value {
        switch sqlite3_column_type(statement, index) {
        case SQLITE_INTEGER: return .integer(sqlite3_column_int64(statement, index))
        case SQLITE_FLOAT: return .real(sqlite3_column_double(statement, index))
        case SQLITE_TEXT: return .text(String(cString: sqlite3_column_text(statement, index)))
        case SQLITE_BLOB:
            let count = Int(sqlite3_column_bytes(statement, index))
            guard count > 0, let base = sqlite3_column_blob(statement, index) else { return .blob([]) }
            return .blob(Array(UnsafeRawBufferPointer(start: base, count: count)))
        default: return .null
        }
    }

    private func error(_ step: String) -> StoreError {
        StoreError("\(step): \(String(cString: sqlite3_errmsg(handle)))")
    }
}
