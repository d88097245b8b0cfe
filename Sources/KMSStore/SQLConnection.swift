/// One connection to the database a key store lives in: the whole of what the key store asks
/// of SQLite or PostgreSQL. Statements number their parameters `?1, ?2, ...` (each backend
/// binds them its own way) and use SQL both accept (`INSERT ... ON CONFLICT ... DO UPDATE`,
/// `||`); where the two differ, ``SQLDialect`` says how.
///
/// Not thread-safe: the key store serializes every use behind one lock.
public protocol SQLConnection: AnyObject {
    var dialect: SQLDialect { get }
    /// Runs SQL without parameters or results; several statements separated by semicolons.
    func execute(_ sql: String) throws
    /// Runs one statement with `arguments` bound to `?1, ?2, ...`; returns every result row.
    @discardableResult
    func query(_ sql: String, _ arguments: [SQLValue]) throws -> [SQLRow]
}

/// What differs between the backends' SQL.
public enum SQLDialect: Sendable {
    case sqlite
    case postgres

    /// How a writing transaction begins: SQLite's IMMEDIATE takes the write lock at once (a
    /// transaction that would wait for it later could deadlock against a reader turned writer).
    public var beginTransaction: String { self == .sqlite ? "BEGIN IMMEDIATE" : "BEGIN" }

    /// How a reading transaction begins that sees one committed state throughout (a load of the
    /// whole store while other instances write it). SQLite's deferred transaction is a snapshot
    /// from its first read.
    public var beginSnapshot: String { self == .sqlite ? "BEGIN" : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" }

    /// The column type of bytes.
    public var blobType: String { self == .sqlite ? "BLOB" : "BYTEA" }
    /// The column type of 64-bit integers.
    public var integerType: String { self == .sqlite ? "INTEGER" : "BIGINT" }

    /// The text of member `member` of the JSON object in text column `column`.
    public func jsonMember(_ column: String, _ member: String) -> String {
        self == .sqlite ? "json_extract(\(column), '$.\(member)')" : "((\(column))::jsonb ->> '\(member)')"
    }
}

extension SQLConnection {
    /// Runs `body` in one transaction: all of it is committed, or none.
    public func transaction<R>(_ body: () throws -> R) throws -> R { try run(dialect.beginTransaction, body) }

    /// Runs `body` in a read-only transaction that sees one committed state.
    public func snapshot<R>(_ body: () throws -> R) throws -> R { try run(dialect.beginSnapshot, body) }

    private func run<R>(_ begin: String, _ body: () throws -> R) throws -> R {
        try execute(begin)
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// A statement without parameters.
    @discardableResult
    public func query(_ sql: String) throws -> [SQLRow] { try query(sql, []) }
}
