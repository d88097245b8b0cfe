import KMSStore

/// Which rows each generation of a shared store changed: written by the writer in the
/// transaction that moves the generation, read by the instances following the store so that a
/// change made elsewhere costs them the rows it changed, not a load of the whole store.
///
/// ```
/// change_feed(generation, table_name, row_key)   row_key: the primary key's values (StoreMirror.rowKey)
/// ```
/// `key_material` names a key (all its versions are read again), `meta` a metadata value (not
/// part of what a load returns), `*` every row (a rotation of the root key: every MAC changed).
///
/// The feed is a hint, not a trust anchor: a store writer may delete, add or rewrite entries.
/// A load from it checks what it read as a full load would (each row's MAC), and the digest of
/// the patched set against the one sealed at the new generation; an entry missing shows there
/// (or as a generation with no entry), and the load reads the store whole instead. Entries are
/// kept for ``retained`` generations; an instance further behind reads the store whole.
enum ChangeFeed {
    static let retained: Int64 = 10_000
    static let everyRow = "*"

    static func createSQL(integer: String) -> String {
        "CREATE TABLE IF NOT EXISTS change_feed(generation \(integer) NOT NULL, table_name TEXT NOT NULL, row_key TEXT NOT NULL, "
            + "PRIMARY KEY(generation, table_name, row_key));"
    }

    /// What one transaction changed, gathered as it writes.
    struct Touched {
        var rows: Set<Entry> = []
        mutating func touch(_ table: String, _ values: [String]) { rows.insert(Entry(table: table, rowKey: StoreMirror.rowKey(values))) }
        mutating func touchEveryRow() { rows.insert(Entry(table: ChangeFeed.everyRow, rowKey: "")) }
    }

    struct Entry: Hashable {
        var table: String
        var rowKey: String
    }

    /// Writes `touched` as `generation`'s entries, and forgets the entries past ``retained``.
    static func record(_ touched: Touched, generation: Int64, into db: any SQLConnection) throws {
        for entry in touched.rows {
            try db.query("INSERT INTO change_feed(generation, table_name, row_key) VALUES(?1, ?2, ?3) ON CONFLICT DO NOTHING",
                         [.integer(generation), .text(entry.table), .text(entry.rowKey)])
        }
        try db.query("DELETE FROM change_feed WHERE generation <= ?1", [.integer(generation - retained)])
    }

    /// The rows changed after generation `from` up to `to`; nil unless every generation between
    /// has its entries (some were forgotten, or removed) and none changed every row.
    static func changes(_ db: any SQLConnection, after from: Int64, through to: Int64) throws -> Set<Entry>? {
        guard to > from, to - from <= retained else { return nil }
        var generations = Set<Int64>()
        var entries = Set<Entry>()
        for row in try db.query("SELECT generation, table_name, row_key FROM change_feed WHERE generation > ?1 AND generation <= ?2",
                                [.integer(from), .integer(to)]) {
            guard let generation = row[0].integer, let table = row[1].text, let key = row[2].text, table != everyRow else { return nil }
            generations.insert(generation)
            entries.insert(Entry(table: table, rowKey: key))
        }
        guard Int64(generations.count) == to - from else { return nil }
        return entries
    }
}
