import CLibPQ
import Dispatch
import Foundation
import Synchronization

/// One PostgreSQL session through libpq: the only file that calls the libpq C API.
///
/// libpq, not postgres-nio: the key store's interface is synchronous (one transaction per
/// operation, under the store's lock), libpq is synchronous too, and it adds nothing to the build
/// (postgres-nio took 2.5–4.5 minutes to build here, and would need a bridge from its event loop
/// to the caller's thread on every statement). docs/BENCHMARKS.md has the latency.
///
/// Results are asked for in binary and decoded by column type (bytea, text, integers, floats);
/// parameters go as text, but bytes go as binary bytea. A session that breaks is not reopened
/// behind the caller's back: the writer lock (an advisory lock) went with it, so every later call
/// fails and the process must open the store again.
public final class PostgresDatabase: SQLConnection {
    public let dialect = SQLDialect.postgres
    private let connection: OpaquePointer
    private let location: String
    /// SQL as given (`?N`) → as sent (`$N`).
    private var numbered: [String: String] = [:]
    private var lost: String?

    /// Connects to the database `url` names (a libpq connection URI).
    public init(url: String) throws {
        location = StoreLocation.redacted(url)
        // A session whose peer goes silent must fail, not hang: TCP keepalives and a user
        // timeout, unless the URI says otherwise (its settings come last and win).
        let keywords = ["connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout", "dbname"]
        let values = ["5", "1", "1", "1", "2", "2000", url]
        let connection = Self.withCStrings(keywords) { keywordPointers in
            Self.withCStrings(values) { valuePointers in PQconnectdbParams(keywordPointers, valuePointers, 1) }
        }
        guard let connection else { throw StoreError("cannot connect to \(location): out of memory") }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = Self.message(PQerrorMessage(connection))
            PQfinish(connection)
            throw StoreError("cannot connect to \(location): \(message)")
        }
        self.connection = connection
        // NOTICEs ("relation already exists, skipping") would go to standard error.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
        try execute("SET client_min_messages = warning; SET standard_conforming_strings = on")
    }

    deinit { PQfinish(connection) }

    /// Calls `body` with a NULL-terminated array of C strings.
    private static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        let copies = strings.map { strdup($0) }
        defer { for copy in copies { free(copy) } }
        let pointers = copies.map { UnsafePointer<CChar>($0) } + [nil]
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    /// When the server last answered; read from any thread, so that a watchdog sees a session
    /// that stopped answering while a statement hangs.
    public let answers = SessionClock()

    /// Called once, on whatever thread noticed, when the session is lost: the writer lock went
    /// with it, and another process may be writing the store already.
    public var onLost: (@Sendable (String) -> Void)?

    /// Takes the advisory lock `key` for this session: one writer per store, as the SQLite
    /// store's file lock. The server releases it when the session ends, however the process
    /// ends. With `wait`, asks again every `interval` until it is free (a standby); else throws
    /// if another session holds it. With `shared`, the lock is taken in share mode: any number of
    /// instances that serve together hold it, and it keeps out a writer that wants it alone.
    public func claimWriter(key: Int64, shared: Bool = false, wait: Bool = false, interval: Duration = .milliseconds(50),
                            between: () -> Void = {}) throws {
        let claim = shared ? "SELECT pg_try_advisory_lock_shared(?1)" : "SELECT pg_try_advisory_lock(?1)"
        while wait, try query(claim, [.integer(key)]).first?.first != .integer(1) {
            between()
            let nanoseconds = interval.components.seconds * 1_000_000_000 + interval.components.attoseconds / 1_000_000_000
            var pause = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
            nanosleep(&pause, nil)
        }
        if wait { return }
        let rows = try query(claim, [.integer(key)])
        guard rows.first?.first == .integer(1) else {
            let holder = try? query("SELECT pid, mode FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = ?1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", [.integer(key & 0xffff_ffff)])
            let pid = holder?.first?.first?.integer.map { " (server process \($0))" } ?? ""
            let how = holder?.first?[1].text == "ShareLock" ? "by kmsd instances serving it together (--shared)" : "by another kmsd"
            throw StoreError("the key store \(location) is in use \(how): its advisory lock \(key) is held\(pid)")
        }
    }

    public func execute(_ sql: String) throws {
        try checkSession()
        let result = PQexec(connection, sql)
        defer { PQclear(result) }
        try check(result, sql)
    }

    @discardableResult
    public func query(_ sql: String, _ arguments: [SQLValue] = []) throws -> [SQLRow] {
        try checkSession()
        let text = numbered[sql] ?? Self.number(sql)
        numbered[sql] = text
        // Each parameter's bytes are copied for the call and freed after it.
        var values: [UnsafeMutablePointer<CChar>?] = [], lengths: [Int32] = [], formats: [Int32] = [], types: [Oid] = []
        defer { for value in values { free(value) } }
        for argument in arguments {
            var bytes: [UInt8]? = nil
            var format: Int32 = 0, type: Oid = 0
            switch argument {
            case .null: break
            case let .integer(value): bytes = Array(String(value).utf8); type = 20  // int8
            case let .real(value): bytes = Array(String(value).utf8); type = 701  // float8
            case let .text(value): bytes = Array(value.utf8); type = 25  // text
            case let .blob(value): bytes = value; format = 1; type = 17  // bytea, binary
            }
            if let bytes {
                let copy = malloc(bytes.count + 1)!.assumingMemoryBound(to: CChar.self)
                bytes.withUnsafeBytes { UnsafeMutableRawPointer(copy).copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(copy), byteCount: bytes.count) }
                copy[bytes.count] = 0
                values.append(copy)
                lengths.append(Int32(bytes.count))
            } else {
                values.append(nil)
                lengths.append(0)
            }
            formats.append(format)
            types.append(type)
        }
        let result = values.withUnsafeBufferPointer { valuePointers in
            valuePointers.withMemoryRebound(to: UnsafePointer<CChar>?.self) { constValues in
                PQexecParams(connection, text, Int32(arguments.count), types, constValues.baseAddress, lengths, formats, 1)
            }
        }
        defer { PQclear(result) }
        try check(result, sql)
        var rows: [SQLRow] = []
        let fields = PQnfields(result)
        for row in 0..<PQntuples(result) {
            rows.append(SQLRow((0..<fields).map { column in Self.value(result, row, column) }))
        }
        return rows
    }

    /// Whether the session broke (every later call fails).
    public var isLost: Bool { lost != nil }

    private func checkSession() throws {
        if let lost { throw StoreError("the session with \(location) was lost (\(lost)); open the store again") }
    }

    private func check(_ result: OpaquePointer?, _ sql: String) throws {
        let status = result.map(PQresultStatus) ?? PGRES_FATAL_ERROR
        if PQstatus(connection) == CONNECTION_OK { answers.lastAnswer.store(DispatchTime.now().uptimeNanoseconds, ordering: .releasing) }
        guard status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK else { return }
        let message = result.map { Self.message(PQresultErrorMessage($0)) } ?? Self.message(PQerrorMessage(connection))
        if PQstatus(connection) != CONNECTION_OK {
            lost = message
            onLost?(message)
            throw StoreError("lost the session with \(location): \(message)")
        }
        throw StoreError("\(message) in: \(sql.prefix(80))")
    }

    /// `?N` placeholders outside quoted text as PostgreSQL's `$N`.
    static func number(_ sql: String) -> String {
        var output = "", quoted = false, previous: Character = " "
        for character in sql {
            if character == "'" { quoted.toggle() }
            if !quoted && character.isNumber && previous == "?" { output.removeLast(); output.append("$") }
            output.append(character)
            previous = character
        }
        return output
    }

    private static func message(_ text: UnsafePointer<CChar>?) -> String {
        text.map { String(cString: $0).trimmingCharacters(in: .whitespacesAndNewlines) } ?? "unknown error"
    }

    /// One field of a binary result, by its column's type.
    private static func value(_ result: OpaquePointer?, _ row: Int32, _ column: Int32) -> SQLValue {
        if PQgetisnull(result, row, column) == 1 { return .null }
        let count = Int(PQgetlength(result, row, column))
        guard let base = PQgetvalue(result, row, column) else { return .null }
        let bytes = Array(UnsafeRawBufferPointer(start: base, count: count))
        func integer() -> Int64 { bytes.reduce(Int64(0)) { $0 << 8 | Int64($1) } }
        switch PQftype(result, column) {
        case 17: return .blob(bytes)  // bytea
        case 25, 1043, 19, 18, 114: return .text(String(decoding: bytes, as: UTF8.self))  // text, varchar, name, char, json
        case 3802: return .text(String(decoding: bytes.dropFirst(), as: UTF8.self))  // jsonb: a version byte, then text
        case 16: return .integer(bytes.first == 1 ? 1 : 0)  // bool
        case 20: return .integer(integer())  // int8
        case 23: return .integer(Int64(Int32(truncatingIfNeeded: integer())))  // int4
        case 21: return .integer(Int64(Int16(truncatingIfNeeded: integer())))  // int2
        case 701: return .real(Double(bitPattern: UInt64(bitPattern: integer())))  // float8
        default: return .blob(bytes)
        }
    }
}

/// When a session's server last answered (DispatchTime nanoseconds).
public final class SessionClock: Sendable {
    public let lastAnswer = Atomic<UInt64>(DispatchTime.now().uptimeNanoseconds)
    /// Nanoseconds since then.
    /// Read in that order (the answer, then the clock), and never below zero: another thread may
    /// record an answer at any moment, and a difference that wrapped would read as 584 years.
    public var silence: UInt64 {
        let last = lastAnswer.load(ordering: .acquiring)
        let now = DispatchTime.now().uptimeNanoseconds
        return now > last ? now - last : 0
    }
}
