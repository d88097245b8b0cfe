import CoreMetrics
import Dispatch
import Foundation
import KMSFSCrypto
import KMSStore
import Synchronization

/// The key store in SQL: one SQLite file (the embedded default), or one PostgreSQL database.
/// One implementation over ``SQLConnection``: the records, their MACs, the state digest and the
/// checks are the same whichever database holds them; ``SQLDialect`` covers the few places the
/// two SQLs differ, and each backend's own catalogue is checked for what kmsd never makes.
///
/// ```
/// meta(name TEXT PRIMARY KEY, value BLOB)             schema version, root-key check
/// keys(account, region, key_id, record TEXT)          KeyRecord as JSON (no material), by its identity
/// key_material(account, region, key_id, version, sealed BLOB)   material sealed under the root key
/// aliases(account, region, alias_name, record TEXT)   AliasRecord as JSON
/// audit(seq INTEGER PRIMARY KEY, record BLOB, mac BLOB)   the hash-chained audit trail
/// accounts(account_id, record TEXT)                   AccountRecord as JSON
/// access_keys(access_key_id, account, record, sealed_secret)   secret sealed under the root key
/// grants(grant_id, key_id, record TEXT)               GrantRecord as JSON
/// identities(arn, account, record TEXT)               IAM users and roles (IdentityRecord) as JSON
/// custom_key_stores(id, account, record, sealed_secret)   CustomKeyStoreRecord; password or proxy secret sealed
/// ```
/// keys, aliases, accounts, access_keys, grants and identities also carry `mac`: ``RecordAuthenticator``'s MAC over
/// the table and every column the engine reads, checked at every load. `meta.state_digest` holds,
/// sealed, the sum (mod 2^256) of a keyed hash of every such MAC and the audit sequence it was written at,
/// rewritten in every transaction: a row deleted, or an older row put back, changes the set and
/// no longer matches it; an older digest put back with it names an audit head the trail has passed.
///
/// One writer per store: an flock on `<path>.lock` for SQLite, a session-level advisory lock for
/// PostgreSQL (released by the server when the session ends, however the process ends) — or,
/// for a PostgreSQL store served by several instances at once (`shared`), that lock in share
/// mode, and writers that take turns: each transaction takes ``turnLockKey``, reads the trail's
/// head and the sealed state (the digest, and the generation in it) as the database holds them,
/// moves them, and reads back what it wrote before it commits.
final class RelationalKeyStore: KeyStore {
    /// 2: keys and their material by identity (account, Region, key ID); 1 had the key ID alone.
    static let schemaVersion = 2
    /// The advisory lock that makes one kmsd the writer of a PostgreSQL store ("kmsd" in ASCII).
    static let writerLockKey: Int64 = 0x6b6d_7364
    /// The transaction-scoped advisory lock the writers of a shared store take in turn ("kmse").
    static let turnLockKey: Int64 = 0x6b6d_7365
    let shared: Bool
    /// A shared store's second session, for following the others (``position()``, and loads):
    /// a poll that waited behind this instance's own writes could not confirm its state in time.
    private let follow: FollowSession?
    /// Set once the engine has opened the store: from then on a shared store whose state digest
    /// is missing is refused (only a new store, at its first open, writes its first digest).
    private let digestRequired = Atomic<Bool>(false)
    /// The last record of the trail this instance has seen in the store, by sequence and MAC. The
    /// store must go on holding it, that record and no other at that sequence: a trail cut, or
    /// an older copy of the store put back, is refused even once traffic has carried the new,
    /// forked trail past its number.
    private let pin = Mutex<AuditPosition?>(nil)
    /// The records of the last load, decoded, by their rows' MACs (which cover the JSON text and
    /// were verified first): decoding every record again was most of a follower's load's time.
    private let decoded = Mutex<[[UInt8]: any Sendable]>([:])
    /// A shared store's rows as this instance last loaded them, for the next load to patch
    /// (``ChangeFeed``); nil until a load, and again whenever the authenticator changes.
    private let mirror = Mutex<StoreMirror?>(nil)
    /// Loads that read the whole store (the others read the change feed's rows).
    let fullLoads = Atomic<Int>(0)
    static let fullLoadsMetric = CoreMetrics.Counter(label: "kmsd_store_full_loads_total")
    /// The connection, behind the one lock that serializes all store access.
    private let database: ConnectionLock
    private let dialect: SQLDialect
    /// An exclusive flock on `<path>.lock` (SQLite), held while the store is open; -1 for PostgreSQL.
    private let lockDescriptor: Int32
    private let authenticator = Mutex<RecordAuthenticator?>(nil)
    /// The state digest, the audit head and the generation it was last written at; nil until
    /// ``load()`` has checked them (nothing before that writes a record or an audit record).
    private let tracked = Mutex<SealedState?>(nil)
    static let stateDigestName = "state_digest"
    /// The tables whose rows carry a MAC, and the columns it covers (in order).
    static let authenticated: [(table: String, columns: [String])] = [
        ("keys", ["key_id", "account", "region", "record"]),
        ("aliases", ["account", "region", "alias_name", "target_key_id", "record"]),
        ("accounts", ["account_id", "record"]),
        ("access_keys", ["access_key_id", "account", "record"]),
        ("grants", ["grant_id", "key_id", "record"]),
        ("identities", ["arn", "account", "record"]),
        ("custom_key_stores", ["id", "account", "record"]),
    ]

    /// The session checks of a PostgreSQL store (none for SQLite, whose lock cannot be lost).
    private nonisolated(unsafe) var heartbeat: DispatchSourceTimer?
    private nonisolated(unsafe) var watchdog: DispatchSourceTimer?
    /// How long a PostgreSQL session may go without an answer before the store counts it lost:
    /// the bound on how long an instance cut off from its database (and so, maybe, from its
    /// writer lock) goes on answering. docs/KMS.md, "PostgreSQL: one serving instance, standbys, fencing".
    static let sessionDeadline: UInt64 = 3_000_000_000

    /// - Parameters:
    ///   - waitForWriter: wait for the writer lock rather than fail (a standby kmsd), calling
    ///     `whileWaiting` between tries.
    ///   - onLost: called when the PostgreSQL session, and with it the writer lock, is lost:
    ///     noticed by a statement, or by the watchdog when the server has not answered for
    ///     ``sessionDeadline`` (a statement hanging on a silent network included).
    ///   - shared: serve the store together with other instances (PostgreSQL only).
    init(location: StoreLocation, shared: Bool = false, waitForWriter: Bool = false, whileWaiting: @escaping @Sendable () -> Void = {},
         onLost: (@Sendable (String) -> Void)? = nil) throws {
        let database: any SQLConnection
        var session: SessionClock?
        self.shared = shared
        switch location {
        case let .sqlite(path):
            guard !shared else { throw StoreError("only a PostgreSQL store is served by several instances at once (--shared); \(path) is an SQLite file") }
            follow = nil
            lockDescriptor = try Self.lockExclusively(path + ".lock", wait: waitForWriter, between: whileWaiting)
            do { database = try SQLiteDatabase(path: path) } catch {
                close(lockDescriptor)
                throw error
            }
        case let .postgres(url):
            lockDescriptor = -1
            let postgres = try PostgresDatabase(url: url)
            try postgres.claimWriter(key: Self.writerLockKey, shared: shared, wait: waitForWriter, between: whileWaiting)
            postgres.onLost = onLost
            session = postgres.answers
            database = postgres
            follow = shared ? FollowSession(url: url) : nil
            if shared { try Self.limitWaits(postgres) }
        }
        dialect = database.dialect
        try Self.createSchema(database, location: location)
        self.database = ConnectionLock(database)
        if let session {
            heartbeat = startHeartbeat()
            watchdog = Self.startWatchdog(session, onLost: onLost)
        }
    }

    /// An instance whose network goes silent in the middle of a transaction holds the writers'
    /// turn until the server notices; the others would wait on it past their own session
    /// deadline and stop too. So the server ends a session idle in a transaction for 1.5 s (or,
    /// holding the turn outside one, silent for 2.5 s: a live session answers its heartbeat
    /// every 250 ms), and a writer gives up waiting for the turn after 2.5 s (its change fails;
    /// a group commit is tried again) — all under ``sessionDeadline``.
    private static func limitWaits(_ postgres: PostgresDatabase) throws {
        try postgres.execute("SET lock_timeout = '2500ms'; SET idle_in_transaction_session_timeout = '1500ms'")
        // PostgreSQL 14 and later; before, a session silent outside a transaction keeps the turn
        // until TCP gives up on it.
        try? postgres.execute("SET idle_session_timeout = '2500ms'")
    }

    /// Asks the server something every quarter second, so that an idle session is known alive.
    private func startHeartbeat() -> DispatchSourceTimer {
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "kmsd.store-heartbeat"))
        timer.schedule(deadline: .now() + .milliseconds(250), repeating: .milliseconds(250))
        timer.setEventHandler { [weak self] in
            _ = try? self?.database.withLock { try $0.query("SELECT 1") }
        }
        timer.resume()
        return timer
    }

    /// Watches the session from another queue, taking no lock: a heartbeat stuck in a statement
    /// on a network that went silent cannot report anything itself, and meanwhile the instance
    /// would go on answering from a memory another instance may have made stale.
    private static func startWatchdog(_ session: SessionClock, onLost: (@Sendable (String) -> Void)?) -> DispatchSourceTimer {
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "kmsd.store-watchdog"))
        timer.schedule(deadline: .now() + .milliseconds(250), repeating: .milliseconds(250))
        nonisolated(unsafe) var reported = false
        timer.setEventHandler {
            let silent = session.silence
            guard !reported, silent > sessionDeadline else { return }
            reported = true
            onLost?("no answer from PostgreSQL for \(silent / 1_000_000) ms")
        }
        timer.resume()
        return timer
    }

    /// Convenience for the SQLite file at `path`.
    convenience init(path: String) throws { try self.init(location: .sqlite(path: path)) }

    /// Creates the tables a new store lacks, and brings an SQLite store of an earlier schema to
    /// this one (PostgreSQL stores began at schema 2).
    private static func createSchema(_ database: any SQLConnection, location: StoreLocation) throws {
        let (blob, integer) = (database.dialect.blobType, database.dialect.integerType)
        try database.transaction {
            try database.execute("""
                CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value \(blob) NOT NULL);
                CREATE TABLE IF NOT EXISTS keys(account TEXT NOT NULL, region TEXT NOT NULL, key_id TEXT NOT NULL, record TEXT NOT NULL, mac \(blob),
                    PRIMARY KEY(account, region, key_id));
                CREATE TABLE IF NOT EXISTS key_material(
                    account TEXT NOT NULL, region TEXT NOT NULL, key_id TEXT NOT NULL, version \(integer) NOT NULL, sealed \(blob) NOT NULL,
                    PRIMARY KEY(account, region, key_id, version),
                    FOREIGN KEY(account, region, key_id) REFERENCES keys(account, region, key_id) ON DELETE CASCADE);
                CREATE TABLE IF NOT EXISTS aliases(
                    account TEXT NOT NULL, region TEXT NOT NULL, alias_name TEXT NOT NULL, target_key_id TEXT,
                    record TEXT NOT NULL, mac \(blob), PRIMARY KEY(account, region, alias_name));
                CREATE TABLE IF NOT EXISTS audit(seq \(integer) PRIMARY KEY, record \(blob) NOT NULL, mac \(blob) NOT NULL);
                CREATE TABLE IF NOT EXISTS accounts(account_id TEXT PRIMARY KEY, record TEXT NOT NULL, mac \(blob));
                CREATE TABLE IF NOT EXISTS access_keys(
                    access_key_id TEXT PRIMARY KEY, account TEXT NOT NULL REFERENCES accounts(account_id),
                    record TEXT NOT NULL, sealed_secret \(blob) NOT NULL, mac \(blob));
                CREATE TABLE IF NOT EXISTS grants(grant_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, record TEXT NOT NULL, mac \(blob));
                CREATE TABLE IF NOT EXISTS identities(arn TEXT PRIMARY KEY, account TEXT NOT NULL, record TEXT NOT NULL, mac \(blob));
                CREATE TABLE IF NOT EXISTS custom_key_stores(
                    id TEXT PRIMARY KEY, account TEXT NOT NULL, record TEXT NOT NULL, sealed_secret \(blob) NOT NULL, mac \(blob));
                """ + ChangeFeed.createSQL(integer: integer))
            var existing = try database.query("SELECT value FROM meta WHERE name = 'schema'", []).first?.first?.blob
            if database.dialect == .sqlite {
                // Tables of stores made before records had MACs lack the column.
                for (table, _) in Self.authenticated {
                    let columns = try database.query("PRAGMA table_info(\(table))", []).compactMap { $0[1].text }
                    if !columns.contains("mac") { try database.execute("ALTER TABLE \(table) ADD COLUMN mac BLOB") }
                }
                if existing == Array("1".utf8), let sqlite = database as? SQLiteDatabase {
                    try Self.migrateToIdentities(sqlite)
                    existing = Array(String(Self.schemaVersion).utf8)
                }
            }
            if let existing {
                guard existing == Array(String(Self.schemaVersion).utf8) else {
                    throw StoreError("\(location) has schema \(String(decoding: existing, as: UTF8.self)); this build reads \(Self.schemaVersion)")
                }
            } else {
                try database.query("INSERT INTO meta(name, value) VALUES('schema', ?1)", [.blob(Array(String(Self.schemaVersion).utf8))])
            }
        }
    }

    deinit {
        heartbeat?.cancel()
        watchdog?.cancel()
        if lockDescriptor >= 0 { close(lockDescriptor) }
    }

    /// Schema 1 → 2: keys and key_material rebuilt with the key's identity as their primary key.
    /// The rows (and their MACs, which cover account, Region and key ID already) are copied as
    /// they are, so the records' MACs and the state digest still verify; in the open's transaction.
    private static func migrateToIdentities(_ database: SQLiteDatabase) throws {
        try database.execute("""
            CREATE TABLE keys_v2(account TEXT NOT NULL, region TEXT NOT NULL, key_id TEXT NOT NULL, record TEXT NOT NULL, mac BLOB,
                PRIMARY KEY(account, region, key_id));
            INSERT INTO keys_v2(account, region, key_id, record, mac) SELECT account, region, key_id, record, mac FROM keys;
            CREATE TABLE key_material_v2(
                account TEXT NOT NULL, region TEXT NOT NULL, key_id TEXT NOT NULL, version INTEGER NOT NULL, sealed BLOB NOT NULL,
                PRIMARY KEY(account, region, key_id, version),
                FOREIGN KEY(account, region, key_id) REFERENCES keys_v2(account, region, key_id) ON DELETE CASCADE);
            INSERT INTO key_material_v2(account, region, key_id, version, sealed)
                SELECT k.account, k.region, m.key_id, m.version, m.sealed FROM key_material m JOIN keys k ON k.key_id = m.key_id;
            DROP TABLE key_material;
            DROP TABLE keys;
            ALTER TABLE keys_v2 RENAME TO keys;
            ALTER TABLE key_material_v2 RENAME TO key_material;
            UPDATE meta SET value = CAST('2' AS BLOB) WHERE name = 'schema';
            INSERT INTO meta(name, value) VALUES('legacy_material_labels', CAST('1' AS BLOB))
                ON CONFLICT(name) DO UPDATE SET value = excluded.value;
            """)
    }

    /// One engine per store: the engine keeps the store's state in memory, so a second writer
    /// (another kmsd, or kmsfs embedding the same store) would fork the audit chain and lose
    /// changes. The lock is released by the kernel when the process dies, even by SIGKILL.
    private static func lockExclusively(_ path: String, wait: Bool = false, between: () -> Void = {}) throws -> Int32 {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError("cannot open lock file \(path): \(String(cString: strerror(errno)))") }
        while wait, flock(fd, LOCK_EX | LOCK_NB) != 0 {
            between()
            usleep(50_000)
        }
        if wait { return fd }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw StoreError("the key store is in use by another process (\(path) is locked)")
        }
        return fd
    }

    /// A restore's rows (``StoreBackup``), into this new store, in one transaction: the rows
    /// replace the schema marker its open wrote, and go in as they were, MACs and all (the next
    /// open verifies them, under the root key, like any store's).
    func insertRaw(_ rows: [(table: String, values: [SQLValue])], columns: [String: [String]]) throws {
        try database.withLock { db in
            try db.transaction {
                try db.execute("DELETE FROM meta")
                for (table, values) in rows {
                    let names = columns[table]!
                    let placeholders = (1...names.count).map { "?\($0)" }.joined(separator: ", ")
                    try db.query("INSERT INTO \(table)(\(names.joined(separator: ", "))) VALUES(\(placeholders))", values)
                }
            }
        }
    }

    /// Drops every table (a failed restore's schema), in an order the references allow.
    func dropTables() throws {
        try database.withLock { db in
            try db.transaction {
                for table in StoreBackup.tables.map(\.name).reversed() + ["change_feed"] { try db.execute("DROP TABLE IF EXISTS \(table)") }
            }
        }
    }

    func recordsAuthenticated() throws -> Bool {
        try database.withLock { db in try db.query("SELECT value FROM meta WHERE name = 'records'", []).first?.first?.blob == Array("1".utf8) }
    }

    func authenticateRecords(with authenticator: RecordAuthenticator, upgrade: Bool) throws {
        try database.withLock { db in
            // A store written before records had MACs gets them now, once, when the engine has
            // established that it is one (see KMSEngine.checkNeverAuthenticated): what it holds is
            // trusted as it is at this upgrade, then checked always.
            if try db.query("SELECT value FROM meta WHERE name = 'records'", []).first?.first?.blob != Array("1".utf8) {
                guard upgrade else { throw StoreError("the store's records are not marked authenticated: refusing to open it") }
                try db.transaction {
                    _ = try Self.authenticateAll(db, with: authenticator, checkedUnder: nil)
                    try Self.putMetadata(db, "records", Array("1".utf8))
                }
            }
        }
        self.authenticator.withLock { $0 = authenticator }
        mirror.withLock { $0 = nil }
    }

    /// Gives every record its MAC under `authenticator` (as the record is now) and returns the
    /// state digest of them. With `previous` (a rotation of the root key), each row must first
    /// verify under it, and the digest of the rows under it is returned too: a row changed,
    /// added or deleted behind kmsd since it last checked the store is refused, not blessed.
    private static func authenticateAll(_ db: any SQLConnection, with authenticator: RecordAuthenticator,
                                        checkedUnder previous: RecordAuthenticator?) throws -> (digest: [UInt8], previous: [UInt8]) {
        var digest = [UInt8](repeating: 0, count: 32)
        var previousDigest = digest
        for (table, columns) in Self.authenticated {
            // Each row is found again by its primary key, which is among the columns.
            let key = Self.primaryKeys[table]!
            let match = key.enumerated().map { "\($0.element) = ?\($0.offset + 2)" }.joined(separator: " AND ")
            for row in try db.query("SELECT mac, \(columns.joined(separator: ", ")) FROM \(table)", []) {
                let fields = row.dropFirst().map { $0.text ?? "" }
                if let previous {
                    guard previous.verifies(row[0].blob, table: table, fields) else {
                        throw StoreError("the record \(table)/\(fields.first ?? "?") was changed outside kmsd (its MAC does not verify under the root key): nothing was changed")
                    }
                    add(previous.element(table: table, mac: row[0].blob ?? []), to: &previousDigest)
                }
                let mac = authenticator.mac(table: table, fields)
                let keyValues = key.map { row[columns.firstIndex(of: $0)! + 1] }
                try db.query("UPDATE \(table) SET mac = ?1 WHERE \(match)", [.blob(mac)] + keyValues)
                add(authenticator.element(table: table, mac: mac), to: &digest)
            }
        }
        return (digest, previousDigest)
    }

    /// One row as a mirror keeps it, its MAC verified (`row`: the MAC, the columns it covers, and
    /// a sealed secret where the table has one, as ``rowSQL(_:_:)`` selects them).
    private static func mirrorRow(_ row: SQLRow, table: String, columns: [String], _ authenticator: RecordAuthenticator) throws -> StoreMirror.Row {
        let fields = (1...columns.count).map { row[$0].text ?? "" }
        guard authenticator.verifies(row[0].blob, table: table, fields), let mac = row[0].blob else {
            throw StoreError("the record \(table)/\(fields.first ?? "?") was changed outside kmsd (its MAC does not verify under the root key): refusing to open the store")
        }
        return StoreMirror.Row(fields: fields, mac: mac, sealed: StoreMirror.sealedTables.contains(table) ? row[columns.count + 1].blob ?? [] : nil)
    }

    private static func rowSQL(_ table: String, _ columns: [String]) -> String {
        "SELECT mac, \(columns.joined(separator: ", "))\(StoreMirror.sealedTables.contains(table) ? ", sealed_secret" : "") FROM \(table)"
    }

    /// Every row of the store, each MAC verified, and every key's sealed material.
    private func readWhole(_ db: any SQLConnection, _ authenticator: RecordAuthenticator) throws -> StoreMirror {
        var mirror = StoreMirror()
        for (table, columns) in Self.authenticated {
            for row in try db.query(Self.rowSQL(table, columns)) {
                let read = try Self.mirrorRow(row, table: table, columns: columns, authenticator)
                mirror.replace(table, StoreMirror.rowKey(table: table, fields: read.fields), with: read, authenticator: authenticator)
            }
        }
        try Self.readMaterial(try db.query(Self.materialSQL), into: &mirror.material)
        return mirror
    }

    private static let materialSQL = "SELECT account, region, key_id, version, sealed FROM key_material"

    /// Puts `rows` (as ``materialSQL`` selects them) into `material`.
    private static func readMaterial(_ rows: [SQLRow], into material: inout [KeyIdentity: [UInt32: [UInt8]]]) throws {
        for row in rows {
            guard let account = row[0].text, let region = row[1].text, let keyID = row[2].text, let version = row[3].integer,
                  let sealed = row[4].blob, let version = UInt32(exactly: version) else {
                throw StoreError("malformed key_material row")
            }
            material[KeyIdentity(account: account, region: region, keyID: keyID), default: [:]][version] = sealed
        }
    }

    /// Brings `mirror` to the sealed state `written` by reading again only the rows the change
    /// feed names, and returns what changed; nil when that cannot be proven (the feed incomplete,
    /// or the patched digest not the sealed one): `mirror` is then to be dropped, and the store
    /// read whole.
    private func patch(_ mirror: inout StoreMirror, _ db: any SQLConnection, to written: SealedState,
                       _ authenticator: RecordAuthenticator) throws -> StoreDelta? {
        if written.generation == mirror.generation { return ConstantTime.equal(mirror.digest, written.digest) ? StoreDelta() : nil }
        guard written.generation > mirror.generation,
              let entries = try ChangeFeed.changes(db, after: mirror.generation, through: written.generation),
              entries.count <= max(64, mirror.rowCount / 8) else { return nil }
        var delta = StoreDelta()
        for entry in entries {
            guard let values = StoreMirror.keyValues(entry.rowKey) else { return nil }
            switch entry.table {
            case "meta":
                continue
            case "key_material":
                guard values.count == 3 else { return nil }
                delta.keys.insert(KeyIdentity(account: values[0], region: values[1], keyID: values[2]))
            default:
                guard let columns = Self.authenticated.first(where: { $0.table == entry.table })?.columns,
                      let key = Self.primaryKeys[entry.table], values.count == key.count else { return nil }
                let match = key.enumerated().map { "\($0.element) = ?\($0.offset + 1)" }.joined(separator: " AND ")
                let row = try db.query(Self.rowSQL(entry.table, columns) + " WHERE " + match, values.map { .text($0) }).first
                let read = try row.map { try Self.mirrorRow($0, table: entry.table, columns: columns, authenticator) }
                let rowKey = StoreMirror.rowKey(values)
                switch entry.table {
                case "keys": delta.keys.insert(KeyIdentity(account: values[0], region: values[1], keyID: values[2]))
                case "aliases": delta.aliases.insert(EngineState.AliasID(account: values[0], region: values[1], name: values[2]))
                case "accounts": delta.accounts.insert(values[0])
                case "access_keys": delta.accessKeys.insert(values[0])
                case "identities": delta.identities.insert(values[0])
                case "custom_key_stores": delta.customKeyStores.insert(values[0])
                case "grants":
                    // The key the grant belongs to, to take it from there: as the last load saw
                    // it, or as the row says now (grants do not move); else the engine looks.
                    let record = try (mirror.rows["grants"]?[rowKey] ?? read).map { try JSONDecoder().decode(GrantRecord.self, from: Data($0.record.utf8)) }
                    delta.grants[values[0]] = record?.keyIdentity
                default: return nil
                }
                mirror.replace(entry.table, rowKey, with: read, authenticator: authenticator)
            }
        }
        // A key's material is read again whenever its record changed too: the material rows
        // carry no MAC in the digest, so the feed alone vouches for them.
        for key in delta.keys {
            mirror.material[key] = nil
            try Self.readMaterial(try db.query(Self.materialSQL + " WHERE account = ?1 AND region = ?2 AND key_id = ?3",
                                               [.text(key.account), .text(key.region), .text(key.keyID)]), into: &mirror.material)
        }
        guard ConstantTime.equal(mirror.digest, written.digest) else { return nil }
        mirror.generation = written.generation
        return delta
    }

    private func mac(_ table: String, _ fields: [String?]) -> SQLValue {
        guard let authenticator = authenticator.withLock({ $0 }) else { return .null }
        return .blob(authenticator.mac(table: table, fields.map { $0 ?? "" }))
    }

    /// Checks the digest of the records read (`digest`) against the sealed one, which must have
    /// been written with the trail's last record `head`; returns false if the store has no
    /// digest yet (written before digests existed: the engine decides whether that is genuine).
    private func checkState(_ digest: [UInt8], sealed: [UInt8]?, head: Int64, _ authenticator: RecordAuthenticator) throws -> Bool {
        tracked.withLock { $0 = SealedState(digest: digest, head: head, generation: 0) }
        guard let sealed else { return false }
        guard let written = authenticator.openDigest(sealed) else {
            throw StoreError("the store's state digest does not open under the root key: refusing to open the store")
        }
        guard written.head == head else {
            throw StoreError("the store's state digest was written at audit record \(written.head) but the trail ends at \(head): the store was edited outside kmsd; refusing to open it")
        }
        guard ConstantTime.equal(written.digest, digest) else {
            throw StoreError("the store's records are not the set kmsd last wrote (a record was deleted, or an older copy of one put back, outside kmsd): refusing to open the store")
        }
        tracked.withLock { $0 = written }
        return true
    }

    /// Adds `element` to `digest` modulo 2^256 (big-endian). A sum, not an XOR: the same row
    /// twice counts twice (an XOR of two copies would cancel, and let an old row in twice).
    static func add(_ element: [UInt8], to digest: inout [UInt8]) {
        var carry: UInt16 = 0
        for index in digest.indices.reversed() {
            let sum = UInt16(digest[index]) + UInt16(element[index]) + carry
            digest[index] = UInt8(truncatingIfNeeded: sum)
            carry = sum >> 8
        }
    }

    /// Subtracts `element` from `digest` modulo 2^256.
    static func subtract(_ element: [UInt8], from digest: inout [UInt8]) {
        var borrow: Int16 = 0
        for index in digest.indices.reversed() {
            var difference = Int16(digest[index]) - Int16(element[index]) - borrow
            borrow = difference < 0 ? 1 : 0
            if difference < 0 { difference += 256 }
            digest[index] = UInt8(difference)
        }
    }

    /// The primary key of each authenticated table, as kmsd creates it.
    static let primaryKeys: [String: [String]] = [
        "keys": ["account", "region", "key_id"], "aliases": ["account", "region", "alias_name"], "accounts": ["account_id"],
        "access_keys": ["access_key_id"], "grants": ["grant_id"], "identities": ["arn"], "custom_key_stores": ["id"],
    ]

    /// Refuses a schema kmsd did not make: triggers, rules or views (which could act on kmsd's
    /// own writes, or stand in for a table), or an authenticated table rebuilt without its
    /// primary key (which would let one record appear twice).
    private func verifySchema(_ db: any SQLConnection) throws {
        let planted: SQLRow?
        switch dialect {
        case .sqlite:
            planted = try db.query("SELECT type, name FROM sqlite_master WHERE type IN ('trigger', 'view') LIMIT 1").first
        case .postgres:
            planted = try db.query("""
                SELECT 'trigger', t.tgname::text FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
                    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND n.nspname = current_schema()
                UNION ALL SELECT 'rule', rulename::text FROM pg_catalog.pg_rules WHERE schemaname = current_schema()
                UNION ALL SELECT 'view', c.relname::text FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = current_schema() AND c.relkind IN ('v', 'm')
                UNION ALL SELECT 'row security policy', policyname::text FROM pg_catalog.pg_policies WHERE schemaname = current_schema()
                LIMIT 1
                """).first
        }
        if let planted {
            throw StoreError("the store holds a \(planted[0].text ?? "?") \(planted[1].text ?? "?") that kmsd never makes: it was edited outside kmsd; refusing to open it")
        }
        for (table, key) in Self.primaryKeys {
            let primary: [String]
            switch dialect {
            case .sqlite:
                let columns = try db.query("PRAGMA table_info(\(table))")
                primary = columns.filter { ($0[5].integer ?? 0) > 0 }.sorted { ($0[5].integer ?? 0) < ($1[5].integer ?? 0) }.compactMap { $0[1].text }
            case .postgres:
                primary = try db.query("""
                    SELECT a.attname::text FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
                        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                        JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
                        JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                    WHERE i.indisprimary AND c.relname = ?1 AND n.nspname = current_schema() ORDER BY k.ord
                    """, [.text(table)]).compactMap { $0[0].text }
            }
            guard primary == key else {
                throw StoreError("the table \(table) no longer has its primary key (\(key.joined(separator: ", "))): the store was edited outside kmsd; refusing to open it")
            }
        }
    }

    /// Sets a metadata value, replacing the old one.
    private static func putMetadata(_ db: any SQLConnection, _ name: String, _ value: [UInt8]) throws {
        try db.query("INSERT INTO meta(name, value) VALUES(?1, ?2) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                     [.text(name), .blob(value)])
    }

    func load() throws -> StoreContents { try reading { db in try read(db, changes: nil) } }

    func loadChanges(stateAt generation: Int64) throws -> StoreContents { try reading { db in try read(db, changes: generation) } }

    /// A shared store is read on the follow session: a load does not wait behind writes.
    private func reading(_ body: (any SQLConnection) throws -> StoreContents) throws -> StoreContents {
        if let follow { return try follow.withConnection(body) }
        return try database.withLock(body)
    }

    /// One snapshot of the store: with `changes` (the generation of the engine's state), on a
    /// shared store whose mirror is there and not ahead of that state, only the rows changed
    /// since (``ChangeFeed``); otherwise every row, each checked.
    private func read(_ db: any SQLConnection, changes: Int64?) throws -> StoreContents {
        let pinned = pin.withLock { $0 }
        return try db.snapshot {
            try verifySchema(db)
            guard let authenticator = authenticator.withLock({ $0 }) else { throw StoreError("records are not authenticated yet") }
            let head = try db.query("SELECT MAX(seq) FROM audit").first?.first?.integer ?? 0
            let sealed = try db.query("SELECT value FROM meta WHERE name = ?1", [.text(Self.stateDigestName)]).first?.first?.blob
            var current: StoreMirror?
            var delta: StoreDelta?
            // Taken out, so that it is patched in place (not copied); put back once read.
            if let changes, shared, let sealed, var previous = mirror.withLock({ held in defer { held = nil }; return held }),
               previous.generation <= changes {
                let written = try openDigest(sealed, head: head)
                delta = try patch(&previous, db, to: written, authenticator)
                if delta != nil {
                    current = previous
                    tracked.withLock { $0 = written }
                }
            }
            var digested = true
            if current == nil {
                var whole = try readWhole(db, authenticator)
                digested = try checkState(whole.digest, sealed: sealed, head: head, authenticator)
                whole.generation = tracked.withLock { $0?.generation ?? 0 }
                current = whole
                fullLoads.add(1, ordering: .relaxed)
                Self.fullLoadsMetric.increment()
            }
            let last = try db.query("SELECT seq, record, mac FROM audit ORDER BY seq DESC LIMIT 1").first.map(Self.auditRow)
            if let pinned {
                let macAtPin = try db.query("SELECT mac FROM audit WHERE seq = ?1", [.integer(pinned.sequence)]).first?.first?.blob
                try checkPin(pinned, macAtPin: macAtPin, last: last.map { AuditPosition(sequence: $0.sequence, mac: $0.mac) })
            }
            let (loaded, decodedNow) = try current!.contents(of: delta, decoded: delta == nil ? decoded.withLock { $0 } : [:])
            if delta == nil { decoded.withLock { $0 = decodedNow } }
            var contents = loaded
            if changes != nil, shared { mirror.withLock { $0 = current } }
            contents.changed = delta
            contents.lastAudit = last
            contents.stateDigestMissing = !digested
            contents.legacyMaterialLabels = try db.query("SELECT 1 FROM meta WHERE name = 'legacy_material_labels'").first != nil
            return contents
        }
    }

    func requireDigest() { digestRequired.store(true, ordering: .releasing) }

    func distrustLastLoad() { mirror.withLock { $0 = nil } }

    func holdingTurn(_ body: () throws -> Void) throws {
        guard shared else { return try body() }
        try database.withLock { db in _ = try db.query("SELECT pg_advisory_lock(?1)", [.integer(Self.turnLockKey)]) }
        defer { _ = try? database.withLock { db in try db.query("SELECT pg_advisory_unlock(?1)", [.integer(Self.turnLockKey)]) } }
        return try body()
    }

    /// Where a shared store is, as its sealed state digest says (on the follow session): the
    /// digest must open under the root key and name the trail's last record, written with it in
    /// the same transaction. A store writer can neither move the generation (so that instances
    /// load a state or miss one) nor hold it still while the trail moves on.
    func position() throws -> StorePosition {
        guard let follow else { throw StoreError("only a shared store is followed") }
        return try follow.withConnection { db in
            let pinned = pin.withLock { $0 }
            let row = try db.query(Self.positionSQL, [.text(Self.stateDigestName), .integer(pinned?.sequence ?? 0),
                                                      .text(KMSEngine.rotationAnnouncement)]).first
            let last = row?[1].integer.map { AuditPosition(sequence: $0, mac: row?[2].blob ?? []) }
            try checkPin(pinned, macAtPin: row?[3].blob, last: last)
            let head = last?.sequence ?? 0
            guard let sealed = row?[0].blob else {
                // A new store's: its first open writes the first digest.
                guard !digestRequired.load(ordering: .acquiring) else { throw StoreError("the store's state digest is missing: it was removed outside kmsd") }
                return StorePosition(head: head, generation: 0)
            }
            let written = try openDigest(sealed, head: head)
            return StorePosition(head: head, generation: written.generation, announcement: row?[4].blob)
        }
    }

    /// Refuses a store that no longer holds the pinned record (`macAtPin`, the MAC at its
    /// sequence, read in the statement that read `last`, the trail's last record; the pin read
    /// before that statement: a record written or seen meanwhile is not held against it); then
    /// moves the pin to `last`.
    private func checkPin(_ pinned: AuditPosition?, macAtPin: [UInt8]?, last: AuditPosition?) throws {
        if let pinned, pinned.sequence > 0 {
            guard let last, last.sequence >= pinned.sequence, let macAtPin, ConstantTime.equal(macAtPin, pinned.mac) else {
                throw StoreError("the store's audit trail no longer holds record \(pinned.sequence) as this instance saw it (the trail ends at \(last?.sequence ?? 0)): records were cut off or the store was rolled back")
            }
        }
        advancePin(to: last)
    }

    private func advancePin(to last: AuditPosition?) {
        guard let last else { return }
        pin.withLock { pinned in
            if last.sequence > (pinned?.sequence ?? 0) { pinned = last }
        }
    }

    /// The sealed digest, which must open and have been written with the trail's last record `head`.
    private func openDigest(_ sealed: [UInt8], head: Int64) throws -> SealedState {
        guard let authenticator = authenticator.withLock({ $0 }), let written = authenticator.openDigest(sealed) else {
            throw StoreError("the store's state digest does not open under the root key: it was edited outside kmsd")
        }
        guard written.head == head else {
            throw StoreError("the store's state digest was written at audit record \(written.head) but the trail ends at \(head): the store was edited outside kmsd")
        }
        return written
    }

    /// A shared store's turn: taken in the transaction, then the trail's head and the sealed
    /// state (digest and generation) read as the last writer left them. The head may not be
    /// behind what this instance has already seen (the audit log checks that); the digest must
    /// be the one written with that head, and there must be one once the store is open.
    private func takeTurn(_ db: any SQLConnection) throws -> (head: AuditPosition?, state: SealedState?) {
        try db.query("SELECT pg_advisory_xact_lock(?1)", [.integer(Self.turnLockKey)])
        let pinned = pin.withLock { $0 }
        let row = try db.query(Self.headSQL, [.text(Self.stateDigestName), .integer(pinned?.sequence ?? 0)]).first
        let head = row?[1].integer.map { AuditPosition(sequence: $0, mac: row?[2].blob ?? []) }
        try checkPin(pinned, macAtPin: row?[3].blob, last: head)
        guard let sealed = row?[0].blob else {
            guard !digestRequired.load(ordering: .acquiring) else {
                throw StoreError("the store's state digest is missing: it was removed outside kmsd")
            }
            return (head, nil)
        }
        return (head, try openDigest(sealed, head: head?.sequence ?? 0))
    }

    /// The sealed digest, the trail's last record and the MAC of record ?2 (the pin), in one
    /// statement (one snapshot).
    private static let headColumns = """
        (SELECT value FROM meta WHERE name = ?1), (SELECT seq FROM audit ORDER BY seq DESC LIMIT 1),
            (SELECT mac FROM audit ORDER BY seq DESC LIMIT 1), (SELECT mac FROM audit WHERE seq = ?2)
        """
    private static let headSQL = "SELECT " + headColumns

    /// ``headSQL`` and an announced rotation of the root key (meta ?3), in one snapshot: an
    /// announcement gone and a digest not yet moved would otherwise pass for a withdrawn rotation.
    private static let positionSQL = "SELECT " + headColumns + ", (SELECT value FROM meta WHERE name = ?3)"

    func apply(_ changes: [StoreChange], basedOn expected: Int64?, reauthenticating rekey: RecordAuthenticator?,
               audit seal: (AuditPosition?) throws -> AuditAppend) throws -> Int64 {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return try database.withLock { db in
            let authenticator = self.authenticator.withLock { $0 }
            var state = tracked.withLock { $0 }
            var touched = ChangeFeed.Touched()
            /// Takes the rows `sql` selects (their MACs) out of the digest, before they change,
            /// and names them in the change feed.
            func remove(_ table: String, _ sql: String, _ parameters: [SQLValue]) throws {
                for row in try db.query("SELECT mac, \(Self.primaryKeys[table]!.joined(separator: ", ")) FROM \(table) WHERE " + sql, parameters) {
                    touched.touch(table, row.dropFirst().map { $0.text ?? "" })
                    guard state != nil, let authenticator else { continue }
                    Self.subtract(authenticator.element(table: table, mac: row[0].blob ?? []), from: &state!.digest)
                }
            }
            /// Puts a new row's MAC into the digest.
            func add(_ table: String, _ mac: SQLValue) {
                guard state != nil, let authenticator, let mac = mac.blob else { return }
                Self.add(authenticator.element(table: table, mac: mac), to: &state!.digest)
            }
            let (generation, written) = try EngineMetrics.storeTransaction { try db.transaction {
                var head: AuditPosition?
                if shared {
                    let turn = try takeTurn(db)
                    // The state as the last writer left it (a new store has none yet: the one
                    // this instance computed at load stands).
                    if let stored = turn.state { state = stored }
                    let at = state?.generation ?? 0
                    if let expected, !changes.isEmpty, at != expected { throw StaleStateError(expected: expected, stored: at) }
                    head = turn.head
                }
                let append = try seal(head), audit = append.records
                if let sealedHead = append.head { try Self.putMetadata(db, "audit_head", sealedHead) }
                for (name, value) in append.metadata { try Self.putMetadata(db, name, value) }
                for change in changes {
                    switch change {
                    case let .putKey(record):
                        let json = String(decoding: try encoder.encode(record), as: UTF8.self)
                        // An upsert, not INSERT OR REPLACE: a replace deletes the row first, and
                        // the cascade would take the key's material with it.
                        let recordMAC = mac("keys", [record.keyID, record.account, record.region, json])
                        let identity = Self.identity(record.identity)
                        touched.touch("keys", [record.account, record.region, record.keyID])
                        try remove("keys", "account = ?1 AND region = ?2 AND key_id = ?3", identity)
                        try db.query("""
                            INSERT INTO keys(account, region, key_id, record, mac) VALUES(?1, ?2, ?3, ?4, ?5)
                            ON CONFLICT(account, region, key_id) DO UPDATE SET record = excluded.record, mac = excluded.mac
                            """, identity + [.text(json), recordMAC])
                        add("keys", recordMAC)
                    case let .putMaterial(key, version, sealed):
                        touched.touch("key_material", [key.account, key.region, key.keyID])
                        try db.query("INSERT INTO key_material(account, region, key_id, version, sealed) VALUES(?1, ?2, ?3, ?4, ?5)",
                                     Self.identity(key) + [.integer(Int64(version)), .blob(sealed)])
                    case let .resealMaterial(key, version, sealed):
                        touched.touch("key_material", [key.account, key.region, key.keyID])
                        try db.query("UPDATE key_material SET sealed = ?5 WHERE account = ?1 AND region = ?2 AND key_id = ?3 AND version = ?4",
                                     Self.identity(key) + [.integer(Int64(version)), .blob(sealed)])
                    case let .deleteMaterial(key, version):
                        touched.touch("key_material", [key.account, key.region, key.keyID])
                        try db.query("DELETE FROM key_material WHERE account = ?1 AND region = ?2 AND key_id = ?3 AND version = ?4",
                                     Self.identity(key) + [.integer(Int64(version))])
                    case let .deleteKey(key):
                        let identity = Self.identity(key)
                        touched.touch("key_material", [key.account, key.region, key.keyID])
                        let aliases = "account = ?1 AND region = ?2 AND target_key_id = ?3"
                        // Grants name their key by ARN (its identity) in the record and by ID in the row.
                        let grants = "key_id = ?3 AND \(dialect.jsonMember("record", "keyARN")) = 'arn:aws:kms:' || ?2 || ':' || ?1 || ':key/' || ?3"
                        try remove("aliases", aliases, identity)
                        try remove("grants", grants, identity)
                        try remove("keys", "account = ?1 AND region = ?2 AND key_id = ?3", identity)
                        try db.query("DELETE FROM aliases WHERE " + aliases, identity)
                        try db.query("DELETE FROM grants WHERE " + grants, identity)
                        try db.query("DELETE FROM keys WHERE account = ?1 AND region = ?2 AND key_id = ?3", identity)
                    case let .putAlias(alias):
                        let json = String(decoding: try encoder.encode(alias), as: UTF8.self)
                        let recordMAC = mac("aliases", [alias.account, alias.region, alias.aliasName, alias.targetKeyID, json])
                        touched.touch("aliases", [alias.account, alias.region, alias.aliasName])
                        try remove("aliases", "account = ?1 AND region = ?2 AND alias_name = ?3",
                                   [.text(alias.account), .text(alias.region), .text(alias.aliasName)])
                        try db.query("""
                            INSERT INTO aliases(account, region, alias_name, target_key_id, record, mac) VALUES(?1, ?2, ?3, ?4, ?5, ?6)
                            ON CONFLICT(account, region, alias_name) DO UPDATE SET
                                target_key_id = excluded.target_key_id, record = excluded.record, mac = excluded.mac
                            """, [.text(alias.account), .text(alias.region), .text(alias.aliasName),
                                  alias.targetKeyID.map { .text($0) } ?? .null, .text(json), recordMAC])
                        add("aliases", recordMAC)
                    case let .deleteAlias(account, region, aliasName):
                        try remove("aliases", "account = ?1 AND region = ?2 AND alias_name = ?3", [.text(account), .text(region), .text(aliasName)])
                        try db.query("DELETE FROM aliases WHERE account = ?1 AND region = ?2 AND alias_name = ?3",
                                     [.text(account), .text(region), .text(aliasName)])
                    case let .deleteMetadata(name):
                        touched.touch("meta", [name])
                        try db.query("DELETE FROM meta WHERE name = ?1", [.text(name)])
                    case let .putMetadata(name, value):
                        touched.touch("meta", [name])
                        try Self.putMetadata(db, name, value)
                    case let .putAccount(account):
                        let json = String(decoding: try encoder.encode(account), as: UTF8.self)
                        let recordMAC = mac("accounts", [account.accountID, json])
                        touched.touch("accounts", [account.accountID])
                        try db.query("INSERT INTO accounts(account_id, record, mac) VALUES(?1, ?2, ?3)",
                                     [.text(account.accountID), .text(json), recordMAC])
                        add("accounts", recordMAC)
                    case let .putAccessKey(key, sealed):
                        let json = String(decoding: try encoder.encode(key), as: UTF8.self)
                        let recordMAC = mac("access_keys", [key.accessKeyID, key.account, json])
                        touched.touch("access_keys", [key.accessKeyID])
                        try remove("access_keys", "access_key_id = ?1", [.text(key.accessKeyID)])
                        try db.query("""
                            INSERT INTO access_keys(access_key_id, account, record, sealed_secret, mac) VALUES(?1, ?2, ?3, ?4, ?5)
                            ON CONFLICT(access_key_id) DO UPDATE SET record = excluded.record, sealed_secret = excluded.sealed_secret, mac = excluded.mac
                            """,
                                     [.text(key.accessKeyID), .text(key.account), .text(json), .blob(sealed), recordMAC])
                        add("access_keys", recordMAC)
                    case let .deleteAccessKey(id):
                        try remove("access_keys", "access_key_id = ?1", [.text(id)])
                        try db.query("DELETE FROM access_keys WHERE access_key_id = ?1", [.text(id)])
                    case let .putGrant(grant):
                        let json = String(decoding: try encoder.encode(grant), as: UTF8.self)
                        let recordMAC = mac("grants", [grant.grantID, grant.keyID, json])
                        touched.touch("grants", [grant.grantID])
                        try remove("grants", "grant_id = ?1", [.text(grant.grantID)])
                        try db.query("""
                            INSERT INTO grants(grant_id, key_id, record, mac) VALUES(?1, ?2, ?3, ?4)
                            ON CONFLICT(grant_id) DO UPDATE SET key_id = excluded.key_id, record = excluded.record, mac = excluded.mac
                            """,
                                     [.text(grant.grantID), .text(grant.keyID), .text(json), recordMAC])
                        add("grants", recordMAC)
                    case let .deleteGrant(grantID):
                        try remove("grants", "grant_id = ?1", [.text(grantID)])
                        try db.query("DELETE FROM grants WHERE grant_id = ?1", [.text(grantID)])
                    case let .putIdentity(identity):
                        let json = String(decoding: try encoder.encode(identity), as: UTF8.self)
                        let recordMAC = mac("identities", [identity.arn, identity.account, json])
                        touched.touch("identities", [identity.arn])
                        try remove("identities", "arn = ?1", [.text(identity.arn)])
                        try db.query("""
                            INSERT INTO identities(arn, account, record, mac) VALUES(?1, ?2, ?3, ?4)
                            ON CONFLICT(arn) DO UPDATE SET account = excluded.account, record = excluded.record, mac = excluded.mac
                            """,
                                     [.text(identity.arn), .text(identity.account), .text(json), recordMAC])
                        add("identities", recordMAC)
                    case let .deleteIdentity(arn):
                        try remove("identities", "arn = ?1", [.text(arn)])
                        try db.query("DELETE FROM identities WHERE arn = ?1", [.text(arn)])
                    case let .putCustomKeyStore(store, sealed):
                        let json = String(decoding: try encoder.encode(store), as: UTF8.self)
                        let recordMAC = mac("custom_key_stores", [store.id, store.account, json])
                        touched.touch("custom_key_stores", [store.id])
                        try remove("custom_key_stores", "id = ?1", [.text(store.id)])
                        try db.query("""
                            INSERT INTO custom_key_stores(id, account, record, sealed_secret, mac) VALUES(?1, ?2, ?3, ?4, ?5)
                            ON CONFLICT(id) DO UPDATE SET
                                account = excluded.account, record = excluded.record, sealed_secret = excluded.sealed_secret, mac = excluded.mac
                            """,
                                     [.text(store.id), .text(store.account), .text(json), .blob(sealed), recordMAC])
                        add("custom_key_stores", recordMAC)
                    case let .deleteCustomKeyStore(id):
                        try remove("custom_key_stores", "id = ?1", [.text(id)])
                        try db.query("DELETE FROM custom_key_stores WHERE id = ?1", [.text(id)])
                    }
                }
                try Self.insertAudit(audit, into: db)
                if let rekey {
                    // Every record under the new key, and the digest of them from scratch; the
                    // records as they are must be the set the digest kmsd keeps says.
                    guard let authenticator, let kept = state else { throw StoreError("the store's records are not authenticated yet") }
                    let (digest, previous) = try Self.authenticateAll(db, with: rekey, checkedUnder: authenticator)
                    guard ConstantTime.equal(previous, kept.digest) else {
                        throw StoreError("the store's records are not the set kmsd last wrote (a record was deleted, or an older copy of one put back, outside kmsd): nothing was changed")
                    }
                    state = SealedState(digest: digest, head: audit.last?.sequence ?? head?.sequence ?? kept.head, generation: kept.generation + 1)
                    touched.touchEveryRow()
                    let sealed = try rekey.sealDigest(digest, head: state!.head, generation: state!.generation)
                    try Self.putMetadata(db, Self.stateDigestName, sealed)
                    if shared { try ChangeFeed.record(touched, generation: state!.generation, into: db) }
                    if shared { try checkKept(db, sealed: sealed, last: audit.last.map { AuditPosition(sequence: $0.sequence, mac: $0.mac) } ?? head) }
                } else if var written = state, let authenticator {
                    // The digest moves with the records and the head in the same transaction;
                    // the generation with every change to a record.
                    written.head = audit.last?.sequence ?? head?.sequence ?? written.head
                    if !changes.isEmpty { written.generation += 1 }
                    let sealed = try authenticator.sealDigest(written.digest, head: written.head, generation: written.generation)
                    try Self.putMetadata(db, Self.stateDigestName, sealed)
                    state = written
                    if shared, !changes.isEmpty { try ChangeFeed.record(touched, generation: written.generation, into: db) }
                    if shared { try checkKept(db, sealed: sealed, last: audit.last.map { AuditPosition(sequence: $0.sequence, mac: $0.mac) } ?? head) }
                }
                return (state?.generation ?? 0, audit.last.map { AuditPosition(sequence: $0.sequence, mac: $0.mac) })
            } }
            tracked.withLock { $0 = state }
            if let rekey {
                self.authenticator.withLock { $0 = rekey }
                mirror.withLock { $0 = nil }
            }
            if shared { advancePin(to: written) }
            return generation
        }
    }

    /// Reads back, before the commit, what this transaction wrote last: a trigger or rule planted
    /// to drop or undo kmsd's writes (so that this instance serves a change the others never
    /// see) fails the transaction instead of acknowledging a change the store did not keep.
    private func checkKept(_ db: any SQLConnection, sealed: [UInt8], last: AuditPosition?) throws {
        let row = try db.query(Self.headSQL, [.text(Self.stateDigestName), .integer(0)]).first
        guard row?[0].blob == sealed, row?[1].integer == last?.sequence, row?[2].blob == last?.mac else {
            throw StoreError("the store did not keep what kmsd wrote (a trigger or rule planted outside kmsd?): nothing was committed")
        }
    }

    /// Audit rows per INSERT: a group commit of a busy second holds thousands of records, and
    /// on PostgreSQL each statement is a round trip. A fixed size keeps SQLite's prepared
    /// statements to two texts (the full batch and the single row).
    static let auditBatch = 64
    static let auditBatchSQL = "INSERT INTO audit(seq, record, mac) VALUES "
        + (0..<auditBatch).map { "(?\($0 * 3 + 1), ?\($0 * 3 + 2), ?\($0 * 3 + 3))" }.joined(separator: ", ")

    private static func insertAudit(_ audit: [SealedAuditRecord], into db: any SQLConnection) throws {
        var remaining = audit[...]
        while remaining.count >= auditBatch {
            let batch = remaining.prefix(auditBatch)
            try db.query(auditBatchSQL, batch.flatMap { [.integer($0.sequence), .blob($0.record), .blob($0.mac)] as [SQLValue] })
            remaining = remaining.dropFirst(auditBatch)
        }
        for record in remaining {
            try db.query("INSERT INTO audit(seq, record, mac) VALUES(?1, ?2, ?3)", [.integer(record.sequence), .blob(record.record), .blob(record.mac)])
        }
    }

    /// A key identity as the three parameters ?1 (account), ?2 (Region), ?3 (key ID).
    private static func identity(_ key: KeyIdentity) -> [SQLValue] {
        [.text(key.account), .text(key.region), .text(key.keyID)]
    }

    func auditRecords(after sequence: Int64) throws -> [SealedAuditRecord] {
        try database.withLock { db in
            try db.query("SELECT seq, record, mac FROM audit WHERE seq > ?1 ORDER BY seq", [.integer(sequence)]).map(Self.auditRow)
        }
    }

    func metadata(_ name: String) throws -> [UInt8]? {
        try database.withLock { db in try db.metadata(name) }
    }

    private static func auditRow(_ row: SQLRow) throws -> SealedAuditRecord {
        // Bytes whatever the column's type: an edited row may have turned into text, and
        // verification must report it as altered rather than stop.
        func bytes(_ value: SQLValue) -> [UInt8] { value.blob ?? value.text.map { Array($0.utf8) } ?? [] }
        guard let seq = row[0].integer else { throw StoreError("malformed audit row") }
        let record = bytes(row[1]), mac = bytes(row[2])
        return SealedAuditRecord(sequence: seq, record: record, mac: mac)
    }
}

/// The store's one connection behind its lock (an ``ExclusiveLock``: a transaction runs code the
/// caller passes in, the audit log's sealing once the store's turn has come).
private final class ConnectionLock: Sendable {
    private let lock = ExclusiveLock()
    private nonisolated(unsafe) let connection: any SQLConnection

    init(_ connection: any SQLConnection) { self.connection = connection }

    func withLock<R>(_ body: (any SQLConnection) throws -> R) rethrows -> R {
        try lock.withLock { try body(connection) }
    }
}

/// The second session of an instance serving a shared store: reopened when it breaks (it holds
/// no lock, so a new one is as good), so that following resumes when the database is back.
private final class FollowSession: @unchecked Sendable {
    private let lock = ExclusiveLock()
    private let url: String
    /// Only under `lock`.
    private var connection: PostgresDatabase?

    init(url: String) { self.url = url }

    func withConnection<R>(_ body: (any SQLConnection) throws -> R) throws -> R {
        try lock.withLock {
            let db = try connection ?? PostgresDatabase(url: url)
            connection = db
            do { return try body(db) } catch {
                if db.isLost { connection = nil }
                throw error
            }
        }
    }
}
