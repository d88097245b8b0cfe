import Foundation

/// Every authenticated row of a store and its key material as this instance last loaded them,
/// each row's MAC verified, and the state digest of them (under the root key's authenticator).
///
/// It is what lets an instance following a shared store load only the rows another instance
/// changed (``ChangeFeed``): the rows read again are patched in, and the digest, moved by their
/// elements, must then equal the one the store sealed at its new generation. A load that cannot
/// prove that reads the store whole.
struct StoreMirror {
    struct Row {
        /// The columns the row's MAC covers (``RelationalKeyStore/authenticated``), in order;
        /// the record's JSON is the last.
        var fields: [String]
        var mac: [UInt8]
        /// The sealed secret of an access key or custom key store.
        var sealed: [UInt8]?
        var record: String { fields.last ?? "" }
    }

    /// The generation the rows are at (the sealed state's).
    var generation: Int64 = 0
    var digest = [UInt8](repeating: 0, count: 32)
    /// Rows by table, then by ``rowKey(_:)`` of their primary key.
    var rows: [String: [String: Row]] = [:]
    var material: [KeyIdentity: [UInt32: [UInt8]]] = [:]

    /// Every row and every key's material: what a whole read reads. A load from the feed reads
    /// one row a query, so past an eighth of this a whole read costs less (a large seed, or
    /// entries a store writer made up for rows that do not exist).
    var rowCount: Int { rows.values.reduce(material.count) { $0 + $1.count } }

    /// The tables whose rows carry a sealed secret beside the record.
    static let sealedTables: Set<String> = ["access_keys", "custom_key_stores"]

    /// Where each authenticated table's primary key columns are among the columns its MAC covers.
    static let keyPositions: [String: [Int]] = Dictionary(uniqueKeysWithValues: RelationalKeyStore.authenticated.map { table, columns in
        (table, RelationalKeyStore.primaryKeys[table]!.map { columns.firstIndex(of: $0)! })
    })

    /// A primary key's values as one string (a JSON array: values may hold any character), as
    /// the mirror and the change feed both name a row.
    static func rowKey(_ values: [String]) -> String {
        // Encoding an array of strings cannot fail.
        String(decoding: (try? JSONEncoder().encode(values)) ?? Data(), as: UTF8.self)
    }

    /// The values ``rowKey(_:)`` made, or nil for anything else (the feed is the store's: a store
    /// writer may have put anything in it).
    static func keyValues(_ rowKey: String) -> [String]? {
        try? JSONDecoder().decode([String].self, from: Data(rowKey.utf8))
    }

    static func rowKey(table: String, fields: [String]) -> String {
        rowKey(keyPositions[table]!.map { fields[$0] })
    }

    /// Puts `row` in (or takes the row out, for nil) and moves the digest with it.
    mutating func replace(_ table: String, _ key: String, with row: Row?, authenticator: RecordAuthenticator) {
        if let old = rows[table]?[key] {
            RelationalKeyStore.subtract(authenticator.element(table: table, mac: old.mac), from: &digest)
        }
        rows[table, default: [:]][key] = row
        if let row { RelationalKeyStore.add(authenticator.element(table: table, mac: row.mac), to: &digest) }
    }

    /// The records, decoded: every row, or (with `delta`) the rows it names that are there, and
    /// those keys' material. A record whose row's MAC (which covers its JSON) was decoded before is
    /// taken from `known` as it is; returns what is decoded now, by MAC, for the next load.
    func contents(of delta: StoreDelta? = nil, decoded known: [[UInt8]: any Sendable] = [:]) throws
        -> (StoreContents, [[UInt8]: any Sendable]) {
        let decoder = JSONDecoder()
        var now: [[UInt8]: any Sendable] = [:]
        func records<R: Decodable & Sendable>(_ table: String, _ named: [[String]]?, as type: R.Type) throws -> [(R, Row)] {
            let chosen = named.map { $0.compactMap { rows[table]?[Self.rowKey($0)] } } ?? Array((rows[table] ?? [:]).values)
            return try chosen.map { row in
                let record = try (known[row.mac] as? R) ?? decoder.decode(R.self, from: Data(row.record.utf8))
                now[row.mac] = record
                return (record, row)
            }
        }
        let contents = StoreContents(
            generation: generation,
            keys: try records("keys", delta.map { $0.keys.map { [$0.account, $0.region, $0.keyID] } }, as: KeyRecord.self).map(\.0),
            sealedMaterial: delta.map { Dictionary(uniqueKeysWithValues: $0.keys.compactMap { key in material[key].map { (key, $0) } }) } ?? material,
            aliases: try records("aliases", delta.map { $0.aliases.map { [$0.account, $0.region, $0.name] } }, as: AliasRecord.self).map(\.0),
            accounts: try records("accounts", delta.map { $0.accounts.map { [$0] } }, as: AccountRecord.self).map(\.0),
            accessKeys: try records("access_keys", delta.map { $0.accessKeys.map { [$0] } }, as: AccessKeyRecord.self).map { ($0.0, $0.1.sealed ?? []) },
            lastAudit: nil,
            grants: try records("grants", delta.map { $0.grants.keys.map { [$0] } }, as: GrantRecord.self).map(\.0),
            identities: try records("identities", delta.map { $0.identities.map { [$0] } }, as: IdentityRecord.self).map(\.0),
            customKeyStores: try records("custom_key_stores", delta.map { $0.customKeyStores.map { [$0] } }, as: CustomKeyStoreRecord.self)
                .map { ($0.0, $0.1.sealed ?? []) })
        return (contents, now)
    }
}
