import Foundation
import KMSFSCrypto
import Testing
@testable import KMSEngine
import KMSStore

/// A store written by schema 1 (keys and material by key ID alone) opens under schema 2 (by
/// identity: account, Region, key ID) with every key, version, alias and grant, its records'
/// MACs and its state digest still verifying.
@Suite struct SchemaMigrationTests {
    /// Rebuilds the tables of a schema-2 store in schema 1's layout, rows and MACs as they are,
    /// its material sealed under key IDs alone, as schema 1 sealed it.
    static func downgrade(_ path: String, rootKey: RootKey) throws {
        let database = try SQLiteDatabase(path: path)
        for row in try database.query("SELECT account, region, key_id, version, sealed FROM key_material") {
            let identity = KeyIdentity(account: row[0].text!, region: row[1].text!, keyID: row[2].text!)
            let version = UInt32(row[3].integer!)
            let material = try rootKey.open(row[4].blob!, label: identity.materialLabel, version: version)
            _ = try database.query("UPDATE key_material SET sealed = ?1 WHERE key_id = ?2 AND version = ?3",
                                   [.blob(try rootKey.seal(material, label: identity.keyID, version: version)), row[2], row[3]])
        }
        try database.execute("""
            PRAGMA foreign_keys=OFF;
            CREATE TABLE keys_v1(key_id TEXT PRIMARY KEY, account TEXT NOT NULL, region TEXT NOT NULL, record TEXT NOT NULL, mac BLOB);
            INSERT INTO keys_v1 SELECT key_id, account, region, record, mac FROM keys;
            CREATE TABLE key_material_v1(key_id TEXT NOT NULL REFERENCES keys_v1(key_id) ON DELETE CASCADE,
                version INTEGER NOT NULL, sealed BLOB NOT NULL, PRIMARY KEY(key_id, version));
            INSERT INTO key_material_v1 SELECT key_id, version, sealed FROM key_material;
            DROP TABLE key_material; DROP TABLE keys;
            ALTER TABLE keys_v1 RENAME TO keys; ALTER TABLE key_material_v1 RENAME TO key_material;
            UPDATE meta SET value = CAST('1' AS BLOB) WHERE name = 'schema';
            """)
    }

    @Test func aSchemaOneStoreMigratesWithEverything() throws {
        let f = try EngineFixture()
        let key = try f.createKey().keyId
        try f.engine.createAlias(aliasName: "alias/kept", targetKeyID: key, caller: f.caller)
        _ = try f.engine.rotateKeyOnDemand(keyID: key, caller: f.caller)
        let blob = try f.engine.encrypt(keyID: "alias/kept", plaintext: secret("across the migration"), caller: f.caller).ciphertextBlob
        let grant = try f.engine.createGrant(CreateGrantRequest(keyID: key, granteePrincipal: "arn:aws:iam::111122223333:root",
                                                                operations: ["Decrypt"]), caller: f.caller)
        try f.close()
        try Self.downgrade(f.storePath, rootKey: f.rootKey)
        try f.reopen()
        #expect(text(try f.engine.decrypt(ciphertextBlob: blob, caller: f.caller).plaintext) == "across the migration")
        #expect(try f.engine.describeKey(keyID: "alias/kept", caller: f.caller).keyMetadata.keyId == key)
        #expect(try f.engine.listGrants(keyID: key, caller: f.caller).grants.map(\.grantID).contains(grant.grantID))
        try f.reopen()  // and again, as schema 2: every row sealed under its identity by now
        try f.close()
        let database = try SQLiteDatabase(path: f.storePath)
        let primary = try database.query("PRAGMA table_info(key_material)").filter { ($0[5].integer ?? 0) > 0 }.count
        #expect(primary == 4)
        #expect(try database.query("SELECT 1 FROM meta WHERE name = 'legacy_material_labels'").isEmpty)
        for row in try database.query("SELECT account, region, key_id, version, sealed FROM key_material") {
            let identity = KeyIdentity(account: row[0].text!, region: row[1].text!, keyID: row[2].text!)
            #expect((try? f.rootKey.open(row[4].blob!, label: identity.materialLabel, version: UInt32(row[3].integer!))) != nil)
        }
        withExtendedLifetime(database) {}
        try f.reopen()
        #expect(try f.engine.verifyAudit().isIntact)
    }

    /// Identity, not ID: the same key ID may name keys of two accounts (a seed may give IDs);
    /// each account finds its own, and deleting one leaves the other.
    @Test func theSameKeyIDInTwoAccountsNamesTwoKeys() throws {
        let f = try EngineFixture()
        let id = "1234abcd-12ab-34cd-56ef-1234567890ab"
        var seed = Seed(accounts: [
            Seed.Account(id: "111122223333", keys: [Seed.Key(id: id, region: "eu-west-1", description: "mine")]),
            Seed.Account(id: "444455556666", keys: [Seed.Key(id: id, region: "eu-west-1", description: "theirs")]),
        ])
        try f.engine.seed(seed)
        #expect(try f.engine.describeKey(keyID: id, caller: f.caller).keyMetadata.description == "mine")
        #expect(try f.engine.describeKey(keyID: id, caller: f.otherAccount).keyMetadata.description == "theirs")
        let mine = try f.engine.encrypt(keyID: id, plaintext: secret("mine"), caller: f.caller).ciphertextBlob
        _ = try f.engine.scheduleKeyDeletion(keyID: id, pendingWindowInDays: 7, caller: f.otherAccount)
        f.clock.advance(days: 8)
        #expect(try f.engine.runScheduledTasks().deleted == 1)
        try f.reopen()
        #expect(text(try f.engine.decrypt(ciphertextBlob: mine, caller: f.caller).plaintext) == "mine")
        #expect(throws: KMSError.notFound) { try f.engine.describeKey(keyID: id, caller: f.otherAccount) }
        seed.accounts.removeLast()
        try f.engine.seed(seed)  // found again, unchanged
    }

    /// Whoever can write the store but has no root key cannot give one account's material to
    /// another's key of the same ID: material is sealed under the key's whole identity.
    @Test func materialMovedToAnotherAccountsKeyIsRefused() throws {
        let f = try EngineFixture()
        let id = "1234abcd-12ab-34cd-56ef-1234567890ab"
        try f.engine.seed(Seed(accounts: [
            Seed.Account(id: "111122223333", keys: [Seed.Key(id: id, region: "eu-west-1")]),
            Seed.Account(id: "444455556666", keys: [Seed.Key(id: id, region: "eu-west-1")]),
        ]))
        let mine = try f.engine.encrypt(keyID: id, plaintext: secret("mine"), caller: f.caller).ciphertextBlob
        // The other account names my key by ARN: the same ID, my identity — refused by my policy.
        #expect(throws: KMSError.accessDenied) {
            try f.engine.decrypt(ciphertextBlob: mine, keyID: "arn:aws:kms:eu-west-1:111122223333:key/\(id)", caller: f.otherAccount)
        }
        try f.close()
        let database = try SQLiteDatabase(path: f.storePath)
        _ = try database.query("""
            UPDATE key_material SET sealed = (SELECT sealed FROM key_material WHERE account = '111122223333' AND key_id = ?1 AND version = 1)
            WHERE account = '444455556666' AND key_id = ?1 AND version = 1
            """, [.text(id)])
        withExtendedLifetime(database) {}
        #expect(throws: StoreError.self) { try f.reopen() }
    }
}
