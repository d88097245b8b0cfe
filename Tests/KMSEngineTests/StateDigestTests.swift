import Foundation
import Testing
@testable import KMSEngine
import KMSStore

/// Whoever can write the store but has no root key cannot delete a record, or put back an older
/// one that once verified (a revoked grant, a deleted access key), or put back an older digest
/// with it: the set of records is checked against the sealed state digest at every open.
@Suite struct StateDigestTests {
    enum Edit: CaseIterable {
        case revokedGrantPutBack, revokedGrantPutBackWithItsDigest, deletedAccessKeyPutBack, aliasDeleted, digestDeleted
        /// The table rebuilt without its primary key and the old row put in twice (an XOR digest
        /// would not see two copies of one row).
        case revokedGrantPutBackTwiceInATableWithoutItsKey
        case triggerPlanted
    }

    /// A store with a grant and an access key that were removed through the engine; returns the
    /// rows and digest as they were before, as an attacker with an old copy would have them.
    static func storeWithRevocations() throws -> (EngineFixture, grant: SQLRow, accessKey: SQLRow, digest: [UInt8]) {
        let f = try EngineFixture()
        _ = try f.engine.createAccount(accountID: "111122223333", name: "default")
        let key = try f.createKey().keyId
        try f.engine.createAlias(aliasName: "alias/kept", targetKeyID: key, caller: f.caller)
        _ = try f.engine.createIdentity(.user, name: "bob", caller: f.caller)
        let grant = try f.engine.createGrant(CreateGrantRequest(keyID: key, granteePrincipal: "arn:aws:iam::111122223333:user/bob",
                                                                operations: ["Decrypt"]), caller: f.caller)
        let (accessKey, _) = try f.engine.createAccessKey(account: "111122223333", userName: "bob")
        try f.close()
        let before = try SQLiteDatabase(path: f.storePath)
        let grantRow = try #require(try before.query("SELECT grant_id, key_id, record, mac FROM grants").first)
        let keyRow = try #require(try before.query("SELECT access_key_id, account, record, sealed_secret, mac FROM access_keys").first)
        let digest = try #require(try before.query("SELECT value FROM meta WHERE name = 'state_digest'").first?.first?.blob)
        withExtendedLifetime(before) {}
        try f.reopen()
        try f.engine.revokeGrant(keyID: key, grantID: grant.grantID, caller: f.caller)
        try f.engine.revokeAccessKey(accessKey.record.accessKeyID)
        try f.reopen()  // untouched: the digest matches
        try f.close()
        return (f, grantRow, keyRow, digest)
    }

    @Test(arguments: Edit.allCases) func anEditedSetOfRecordsIsRefused(_ edit: Edit) throws {
        let (f, grant, accessKey, digest) = try Self.storeWithRevocations()
        let database = try SQLiteDatabase(path: f.storePath)
        let expected: String
        switch edit {
        case .revokedGrantPutBack:
            _ = try database.query("INSERT INTO grants(grant_id, key_id, record, mac) VALUES(?1, ?2, ?3, ?4)", grant.values)
            expected = "not the set kmsd last wrote"
        case .revokedGrantPutBackWithItsDigest:
            _ = try database.query("INSERT INTO grants(grant_id, key_id, record, mac) VALUES(?1, ?2, ?3, ?4)", grant.values)
            _ = try database.query("UPDATE meta SET value = ?1 WHERE name = 'state_digest'", [.blob(digest)])
            expected = "but the trail ends at"
        case .deletedAccessKeyPutBack:
            _ = try database.query("INSERT INTO access_keys(access_key_id, account, record, sealed_secret, mac) VALUES(?1, ?2, ?3, ?4, ?5)",
                                   accessKey.values)
            expected = "not the set kmsd last wrote"
        case .aliasDeleted:
            _ = try database.query("DELETE FROM aliases")
            expected = "not the set kmsd last wrote"
        case .digestDeleted:
            _ = try database.query("DELETE FROM meta WHERE name = 'state_digest'")
            expected = "evidence of it is gone"
        case .revokedGrantPutBackTwiceInATableWithoutItsKey:
            try database.execute("""
                CREATE TABLE g2(grant_id TEXT, key_id TEXT NOT NULL, record TEXT NOT NULL, mac BLOB);
                INSERT INTO g2 SELECT * FROM grants; DROP TABLE grants; ALTER TABLE g2 RENAME TO grants;
                """)
            for _ in 0..<2 { _ = try database.query("INSERT INTO grants(grant_id, key_id, record, mac) VALUES(?1, ?2, ?3, ?4)", grant.values) }
            expected = "no longer has its primary key"
        case .triggerPlanted:
            try database.execute("CREATE TRIGGER keep AFTER DELETE ON grants BEGIN SELECT 1; END")
            expected = "that kmsd never makes"
        }
        #expect(try database.query("SELECT changes()").first?.first == .integer(1)
                || [Edit.revokedGrantPutBackTwiceInATableWithoutItsKey, .triggerPlanted].contains(edit), "the edit changed nothing")
        withExtendedLifetime(database) {}
        do {
            try f.reopen()
            Issue.record("the engine opened a store after \(edit)")
        } catch let error as StoreError {
            #expect(error.description.contains(expected), "\(error)")
        }
    }

    /// Every kind of change moves the digest with it: a store changed only through the engine
    /// (keys made, rotated, deleted with their aliases and grants) always reopens.
    /// An access key revoked and made again with the same ID and a new secret: the revoked
    /// secret put back beside the new record (the secret column is outside the record's MAC) does
    /// not open — the store is refused, not opened with the old secret accepted.
    @Test func aRevokedSecretPutBackBesideItsSuccessorIsRefused() throws {
        let f = try EngineFixture()
        _ = try f.engine.createAccount(accountID: "111122223333", name: "default")
        let id = "AKIAREUSEDREUSED0001"
        _ = try f.engine.createAccessKey(account: "111122223333", accessKeyID: id, secretAccessKey: "first-secret-first-secret-first-secret-00", anyShape: true)
        let first = try f.rawConnection().query("SELECT sealed_secret FROM access_keys WHERE access_key_id = ?1", [.text(id)])[0][0]
        try f.engine.revokeAccessKey(id)
        _ = try f.engine.createAccessKey(account: "111122223333", accessKeyID: id, secretAccessKey: "second-secret-second-secret-second-sec00", anyShape: true)
        try f.close()
        try f.rawConnection().query("UPDATE access_keys SET sealed_secret = ?1 WHERE access_key_id = ?2", [first, .text(id)])
        #expect { try f.reopen() } throws: { "\($0)".contains("does not open under the root key") }
    }

    @Test func everyEngineChangeKeepsTheDigest() throws {
        let f = try EngineFixture()
        _ = try f.engine.createAccount(accountID: "111122223333", name: "default")
        _ = try f.engine.createIdentity(.user, name: "bob", caller: f.caller)
        for index in 0..<3 {
            let key = try f.createKey().keyId
            try f.engine.createAlias(aliasName: "alias/k\(index)", targetKeyID: key, caller: f.caller)
            _ = try f.engine.createGrant(CreateGrantRequest(keyID: key, granteePrincipal: "arn:aws:iam::111122223333:user/bob",
                                                            operations: ["Decrypt"]), caller: f.caller)
            _ = try f.engine.rotateKeyOnDemand(keyID: key, caller: f.caller)
            try f.reopen()
        }
        let doomed = try f.engine.describeKey(keyID: "alias/k0", caller: f.caller).keyMetadata.keyId
        _ = try f.engine.scheduleKeyDeletion(keyID: doomed, pendingWindowInDays: 7, caller: f.caller)
        f.clock.advance(days: 8)
        _ = try f.engine.runScheduledTasks()
        try f.reopen()
        #expect(throws: KMSError.notFound) { try f.engine.describeKey(keyID: doomed, caller: f.caller) }
        _ = try f.engine.describeKey(keyID: "alias/k1", caller: f.caller)
    }
}
