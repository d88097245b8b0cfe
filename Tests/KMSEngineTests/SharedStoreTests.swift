import Dispatch
import Foundation
import KMSFSCrypto
import KMSFSTestSupport
import KMSStore
import Synchronization
import Testing
@testable import KMSEngine

/// Several engines serving one PostgreSQL store at once (`kmsd serve --shared`), each with the
/// store's state in its memory: a change drafted on a state another engine has moved past is
/// drafted again on the new one (no lost update, no name taken twice); what is due runs once;
/// every engine's audit records join one chain that verifies.
@Suite(.serialized) struct SharedStoreTests {
    let url: String
    let rootKey: RootKey
    let clock = ManualClock()
    let caller = Caller(account: "111122223333", region: "eu-west-1", requestID: "test")

    init() throws {
        url = try PostgresServer.shared.get().newDatabase()
        rootKey = try RootKey.generate()
    }

    func engine() throws -> KMSEngine {
        try KMSEngine.open(path: url, rootKey: rootKey, clock: clock, schedulerInterval: nil, shared: true)
    }

    /// An engine whose state moves only when the test calls `follow()`: its poll every 100 ms
    /// would race the test's own edits of the store and its expectations of what a load did.
    func quietEngine() throws -> KMSEngine {
        let engine = try engine()
        engine.stopBackgroundWork()
        return engine
    }

    func createKey(_ engine: KMSEngine) throws -> String {
        try engine.createKey(CreateKeyRequest(), caller: caller).keyMetadata.keyId
    }

    /// Runs `body(index)` on `count` threads at once; returns each one's outcome.
    func concurrently<R: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) throws -> R) -> [Result<R, any Error>] {
        let results = Mutex<[Int: Result<R, any Error>]>([:])
        DispatchQueue.concurrentPerform(iterations: count) { index in
            let result = Result { try body(index) }
            results.withLock { $0[index] = result }
        }
        return (0..<count).map { index in results.withLock { $0[index]! } }
    }

    @Test func aChangeOnOneEngineIsSeenByTheOtherAfterItCatchesUp() throws {
        let (a, b) = (try engine(), try engine())
        let key = try createKey(a)
        try b.follow()
        let sealed = try b.encrypt(keyID: key, plaintext: secret("shared"), caller: caller).ciphertextBlob
        try a.disableKey(keyID: key, caller: caller)
        #expect(throws: KMSError.disabled) {
            try b.follow()
            _ = try b.decrypt(ciphertextBlob: sealed, caller: caller)
        }
    }

    /// A load reuses the keys whose rows did not change: a key rotated elsewhere is not one of them.
    @Test func aKeyRotatedOnOneEngineDecryptsOnTheOther() throws {
        let (a, b) = (try engine(), try quietEngine())
        let (key, other) = (try createKey(a), try createKey(a))
        try b.follow()
        _ = try a.rotateKeyOnDemand(keyID: key, caller: caller)
        let sealed = try a.encrypt(keyID: key, plaintext: secret("new version"), caller: caller).ciphertextBlob
        #expect(try b.follow())
        #expect(text(try b.decrypt(ciphertextBlob: sealed, caller: caller).plaintext) == "new version")
        #expect(try b.listKeyRotations(keyID: key, caller: caller).rotations.count == 1)
        _ = try b.encrypt(keyID: other, plaintext: secret("unchanged"), caller: caller)
    }

    /// Without conditional writes, each engine's draft of the key would overwrite the other's tags.
    @Test func changesToOneKeyFromTwoEnginesAreAllKept() throws {
        let (a, b) = (try engine(), try engine())
        let key = try createKey(a)
        let engines = [a, b]
        let outcomes = concurrently(40) { index in
            try engines[index % 2].tagResource(keyID: key, tags: [Tag(tagKey: "t\(index)", tagValue: "\(index)")], caller: caller)
        }
        #expect(outcomes.allSatisfy { if case .success = $0 { true } else { false } })
        try a.follow()
        let tags = try a.listResourceTags(keyID: key, limit: 50, caller: caller).tags.map(\.tagKey)
        #expect(Set(tags) == Set((0..<40).map { "t\($0)" }))
    }

    @Test func aNameIsTakenOnceWhicheverEngineAsks() throws {
        let (a, b) = (try engine(), try engine())
        let key = try createKey(a)
        let engines = [a, b]
        let outcomes = concurrently(8) { index in
            try engines[index % 2].createAlias(aliasName: "alias/one", targetKeyID: key, caller: caller)
        }
        let succeeded = outcomes.filter { if case .success = $0 { true } else { false } }.count
        let taken = outcomes.filter { if case let .failure(error) = $0 { KMSError.Code.alreadyExists ~= error } else { false } }.count
        #expect(succeeded == 1 && taken == 7)
    }

    /// Both engines find the key due (the clock moved past its deletion date) and run their
    /// scheduler at the same moment: the key is deleted once, and the trail says so once.
    @Test func aDueDeletionRunsOnceAcrossEngines() throws {
        let (a, b) = (try engine(), try engine())
        let keys = try (0..<4).map { _ in try createKey(a) }
        for key in keys { _ = try a.scheduleKeyDeletion(keyID: key, pendingWindowInDays: 7, caller: caller) }
        try b.follow()
        clock.advance(days: 8)
        let engines = [a, b]
        let outcomes = concurrently(2) { index in try engines[index].runScheduledTasks().deleted }
        let deleted = try outcomes.map { try $0.get() }
        #expect(deleted.reduce(0, +) == 4)
        let deletions = try a.auditRecords().filter { $0.operation == "DeleteKey" && $0.errorCode == nil }
        #expect(deletions.count == 4)
        #expect(Set(deletions.compactMap(\.keyARN)).count == 4)
    }

    @Test func theRecordsOfEveryEngineJoinOneChainThatVerifies() throws {
        let (a, b) = (try engine(), try engine())
        let key = try createKey(a)
        try b.follow()
        let engines = [a, b]
        _ = concurrently(200) { index in
            try engines[index % 2].generateDataKey(keyID: key, keySpec: .aes256, caller: caller)
        }
        try b.flushAudit()
        let verification = try a.verifyAudit()
        #expect(verification.isIntact, "\(verification)")
        #expect(verification.verifiedCount > 200)
        // A third engine opening the store finds the digest and the trail's head in agreement.
        _ = try engine()
    }

    // Whoever can write the database, without the root key, while the engines run.

    /// An edited record: an engine serving keeps the state it checked; a load that reads the row
    /// (a change to it, or an open, which reads every row) refuses it.
    @Test func anEditedRecordIsNotLoaded() throws {
        let (a, b) = (try engine(), try quietEngine())
        let (key, other) = (try createKey(a), try createKey(a))
        try a.disableKey(keyID: key, caller: caller)
        try b.follow()
        let raw = try PostgresDatabase(url: url)
        let enable = "UPDATE keys SET record = replace(record, '\"Disabled\"', '\"Enabled\"') WHERE key_id = ?1"
        try raw.query(enable, [.text(key)])
        // Another key's change: b reads that key's row alone, and keeps what it had.
        try a.tagResource(keyID: other, tags: [Tag(tagKey: "a", tagValue: "b")], caller: caller)
        try b.follow()
        #expect(throws: KMSError.disabled) { _ = try b.encrypt(keyID: key, plaintext: secret("x"), caller: caller) }
        #expect(throws: StoreError.self) { _ = try engine() }
        // The edited key's own change, edited again after the commit: b reads it, and refuses it.
        try a.tagResource(keyID: key, tags: [Tag(tagKey: "c", tagValue: "d")], caller: caller)
        try raw.query(enable, [.text(key)])
        #expect(throws: StoreError.self) { try b.follow() }
        // Refused: as disabled (what b checked), or as unconfirmed once its last load is older
        // than the bound — never served as the edit says.
        #expect { _ = try b.encrypt(keyID: key, plaintext: secret("x"), caller: caller) } throws: {
            [KMSError.Code.disabled, .internalError].contains(($0 as? KMSError)?.code)
        }
    }

    /// What an engine sees of the store, through the API: every key, alias, grant and tag.
    func view(_ engine: KMSEngine) throws -> [String] {
        let keys = try engine.listKeys(limit: 1000, caller: caller).keys.map(\.keyId).sorted()
        var seen = try keys.map { key in
            "\(try engine.describeKey(keyID: key, caller: caller).keyMetadata) "
                + "\(try engine.listGrants(keyID: key, caller: caller).grants.map(\.grantID).sorted()) "
                + "\(try engine.listResourceTags(keyID: key, caller: caller).tags.map { "\($0.tagKey)=\($0.tagValue)" }.sorted())"
        }
        seen += try engine.listAliases(limit: 100, caller: caller).aliases.map { "\($0)" }.sorted()
        seen += engine.listAccounts().map { "\($0)" }
        seen += engine.listAccessKeys().map { "\($0) \(engine.accessKey($0.accessKeyID).map { $0.secret.withUnsafeBytes { Array($0) } } ?? [])" }
        seen += try engine.listIdentities(.user, caller: caller).map { "\($0)" }.sorted()
        return seen
    }

    func fullLoads(_ engine: KMSEngine) -> Int {
        (engine.store as! RelationalKeyStore).fullLoads.load(ordering: .relaxed)
    }

    /// Changes of every kind made on one engine are read by the other from the change feed (no
    /// load of the whole store), and leave it seeing what an engine opening the store sees.
    @Test func changesElsewhereAreReadFromTheChangeFeedAlone() throws {
        let (a, b) = (try engine(), try quietEngine())
        let keys = try (0..<8).map { _ in try createKey(a) }
        try a.createAlias(aliasName: "alias/gone", targetKeyID: keys[5], caller: caller)
        try a.createAlias(aliasName: "alias/moved", targetKeyID: keys[0], caller: caller)
        _ = try a.createGrant(CreateGrantRequest(keyID: keys[5], granteePrincipal: "arn:aws:iam::111122223333:role/gone",
                                                 operations: ["Decrypt"]), caller: caller)
        _ = try a.scheduleKeyDeletion(keyID: keys[5], pendingWindowInDays: 7, caller: caller)
        let revoked = try a.createAccessKey(account: caller.account, createAccount: true).key.record.accessKeyID
        _ = try a.createIdentity(.user, name: "leaving", caller: caller)
        try b.follow()
        let before = fullLoads(b)
        let added = try a.createAccessKey(account: "444455556666", createAccount: true).key.record.accessKeyID
        try a.revokeAccessKey(revoked)
        _ = try a.createIdentity(.user, name: "joining", caller: caller)
        try a.deleteIdentity(.user, name: "leaving", caller: caller)
        try a.putIdentityPolicy(.user, name: "joining", policyName: "p",
                                document: #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#, caller: caller)
        try a.disableKey(keyID: keys[0], caller: caller)
        _ = try a.rotateKeyOnDemand(keyID: keys[1], caller: caller)
        try a.createAlias(aliasName: "alias/new", targetKeyID: keys[2], caller: caller)
        try a.updateAlias(aliasName: "alias/moved", targetKeyID: keys[3], caller: caller)
        _ = try a.createGrant(CreateGrantRequest(keyID: keys[3], granteePrincipal: "arn:aws:iam::111122223333:role/reader",
                                                 operations: ["Decrypt"]), caller: caller)
        try a.tagResource(keyID: keys[4], tags: [Tag(tagKey: "team", tagValue: "storage")], caller: caller)
        clock.advance(days: 8)
        #expect(try a.runScheduledTasks().deleted == 1)
        let sealed = try a.encrypt(keyID: keys[1], plaintext: secret("new version"), caller: caller).ciphertextBlob
        #expect(try b.follow())
        #expect(fullLoads(b) == before)
        #expect(text(try b.decrypt(ciphertextBlob: sealed, caller: caller).plaintext) == "new version")
        #expect(throws: KMSError.disabled) { _ = try b.encrypt(keyID: keys[0], plaintext: secret("x"), caller: caller) }
        #expect(try view(b) == view(try engine()))
        #expect(b.accessKey(added) != nil && b.accessKey(revoked) == nil)
        #expect(try b.listIdentities(.user, caller: caller).map(\.name) == ["joining"])
        #expect(try b.listGrants(keyID: keys[3], caller: caller).grants.count == 1)
    }

    /// Two engines changing keys, aliases and tags at once, each loading the other's changes from
    /// the feed while its own go in: both end seeing what an engine opening the store sees.
    @Test func concurrentChangesOnTwoEnginesLeaveBothWithTheStoresState() throws {
        let (a, b) = (try engine(), try engine())
        let keys = try (0..<4).map { _ in try createKey(a) }
        let engines = [a, b]
        let outcomes = concurrently(48) { index in
            let engine = engines[index % 2], key = keys[index % 4]
            if index % 6 == 0 { try engine.follow() }
            switch index % 4 {
            case 0: try engine.tagResource(keyID: key, tags: [Tag(tagKey: "t\(index)", tagValue: "\(index)")], caller: caller)
            case 1: try engine.createAlias(aliasName: "alias/a\(index)", targetKeyID: key, caller: caller)
            case 2: _ = try engine.createKey(CreateKeyRequest(), caller: caller)
            default: try (index % 8 == 3 ? engine.disableKey : engine.enableKey)(key, caller)
            }
        }
        #expect(outcomes.allSatisfy { if case .success = $0 { true } else { false } }, "\(outcomes)")
        try a.follow()
        try b.follow()
        let fresh = try view(try engine())
        #expect(try view(a) == fresh)
        #expect(try view(b) == fresh)
        #expect(try b.listKeys(limit: 1000, caller: caller).keys.count == 4 + 12)
        #expect(try b.listAliases(limit: 100, caller: caller).aliases.filter { $0.aliasName.hasPrefix("alias/a") }.count == 12)
    }

    /// A load whose contents were never installed (another thread's, overtaken) is not built on:
    /// the next load, its state behind the store's mirror, reads the store whole.
    @Test func aLoadNeverInstalledIsNotBuiltOn() throws {
        let (a, b) = (try engine(), try quietEngine())
        let (key, other) = (try createKey(a), try createKey(a))
        try b.follow()
        try a.disableKey(keyID: key, caller: caller)
        _ = try b.store.loadChanges(stateAt: b.state.withLock { $0.generation })
        try a.tagResource(keyID: other, tags: [Tag(tagKey: "a", tagValue: "b")], caller: caller)
        let before = fullLoads(b)
        #expect(try b.follow())
        #expect(fullLoads(b) == before + 1)
        #expect(throws: KMSError.disabled) { _ = try b.encrypt(keyID: key, plaintext: secret("x"), caller: caller) }
    }

    /// A grant made on one engine (its own commit, not in its last load) and revoked on the
    /// other, or gone with its key's deletion there: gone from the first too.
    @Test func aGrantMadeHereAndRemovedElsewhereIsGoneHere() throws {
        let (a, b) = (try quietEngine(), try engine())
        let (key, doomed) = (try createKey(a), try createKey(a))
        try b.follow()
        let request = { (key: String) in CreateGrantRequest(keyID: key, granteePrincipal: "arn:aws:iam::111122223333:role/reader", operations: ["Decrypt"]) }
        let revoked = try a.createGrant(request(key), caller: caller).grantID
        _ = try a.createGrant(request(doomed), caller: caller)
        try b.follow()
        try b.revokeGrant(keyID: key, grantID: revoked, caller: caller)
        _ = try b.scheduleKeyDeletion(keyID: doomed, pendingWindowInDays: 7, caller: caller)
        clock.advance(days: 8)
        #expect(try b.runScheduledTasks().deleted == 1)
        try a.follow()
        #expect(try a.listGrants(keyID: key, caller: caller).grants.isEmpty)
        #expect(a.state.withLock { $0.grants.isEmpty })
        #expect(fullLoads(a) == 1)
    }

    /// A store writer who removes, rewrites or pads the feed's entries makes the others read the
    /// store whole, which loads the change all the same.
    @Test func aChangeTheFeedDoesNotAccountForIsLoadedWhole() throws {
        let (a, b) = (try engine(), try quietEngine())
        let (key, other) = (try createKey(a), try createKey(a))
        try b.follow()
        let raw = try PostgresDatabase(url: url)
        for tamper in ["DELETE FROM change_feed", "UPDATE change_feed SET row_key = '[\"\(caller.account)\",\"\(caller.region)\",\"\(other)\"]' WHERE generation = (SELECT MAX(generation) FROM change_feed)",
                       // Entries for rows that do not exist, each a query: past a bound, read whole.
                       "INSERT INTO change_feed SELECT (SELECT MAX(generation) FROM change_feed), 'accounts', '[\"junk' || n || '\"]' "
                           + "FROM generate_series(1, 100) AS n"] {
            let before = fullLoads(b)
            try a.disableKey(keyID: key, caller: caller)
            try raw.execute(tamper)
            #expect(try b.follow())
            #expect(fullLoads(b) == before + 1, "\(tamper)")
            #expect(throws: KMSError.disabled) { _ = try b.encrypt(keyID: key, plaintext: secret("x"), caller: caller) }
            try a.enableKey(keyID: key, caller: caller)
            try b.follow()
            _ = try b.encrypt(keyID: key, plaintext: secret("x"), caller: caller)
        }
    }

    /// A key's new material row removed behind kmsd: the load is refused; once the row is back,
    /// the next load reads the store whole and takes it (not the refused load's rows again).
    @Test func aLoadRefusedForMissingMaterialIsNotBuiltOn() throws {
        let (a, b) = (try engine(), try quietEngine())
        let key = try createKey(a)
        try b.follow()
        _ = try a.rotateKeyOnDemand(keyID: key, caller: caller)
        let raw = try PostgresDatabase(url: url)
        let removed = try raw.query("DELETE FROM key_material WHERE key_id = ?1 AND version = 2 RETURNING account, region, key_id, version, sealed",
                                    [.text(key)])
        #expect(removed.count == 1)
        #expect(throws: StoreError.self) { try b.follow() }
        try raw.query("INSERT INTO key_material(account, region, key_id, version, sealed) VALUES(?1, ?2, ?3, ?4, ?5)", removed[0].values)
        let before = fullLoads(b)
        #expect(try b.follow())
        #expect(fullLoads(b) == before + 1)
        let sealed = try a.encrypt(keyID: key, plaintext: secret("version 2"), caller: caller).ciphertextBlob
        #expect(text(try b.decrypt(ciphertextBlob: sealed, caller: caller).plaintext) == "version 2")
    }

    /// The digest deleted and an older row put back (a DisableKey undone): refused, where a
    /// single writer's open would refuse it too, not digested afresh as the rows are.
    @Test func aDeletedDigestWithAnOlderRowIsRefused() throws {
        let (a, b) = (try engine(), try engine())
        let key = try createKey(a)
        let raw = try PostgresDatabase(url: url)
        let before = try raw.query("SELECT record, mac FROM keys")
        try a.disableKey(keyID: key, caller: caller)
        try b.follow()
        try raw.query("DELETE FROM meta WHERE name = 'state_digest'")
        try raw.query("UPDATE keys SET record = ?1, mac = ?2", [before[0][0], before[0][1]])
        for engine in [a, b] {
            #expect(throws: StoreError.self) { try engine.follow() }
            #expect(throws: KMSError.internalError) { try engine.tagResource(keyID: key, tags: [Tag(tagKey: "a", tagValue: "b")], caller: caller) }
        }
        #expect(throws: KMSError.disabled) { _ = try b.encrypt(keyID: key, plaintext: secret("x"), caller: caller) }
    }

    /// Every table put back as it was before a DisableKey: each engine has seen a longer trail,
    /// and refuses the store rather than serve the older state.
    @Test func aStoreRolledBackWhileServingIsRefused() throws {
        let (a, b) = (try engine(), try engine())
        let key = try createKey(a)
        try b.follow()
        let tables = ["meta", "accounts", "keys", "key_material", "aliases", "access_keys", "grants", "identities", "custom_key_stores", "audit"]
        let raw = try PostgresDatabase(url: url)
        try raw.execute("CREATE SCHEMA copy; " + tables.map { "CREATE TABLE copy.\($0) AS SELECT * FROM public.\($0);" }.joined())
        try a.disableKey(keyID: key, caller: caller)
        try b.follow()
        try raw.execute("BEGIN; " + tables.reversed().map { "DELETE FROM public.\($0);" }.joined()
                        + tables.map { "INSERT INTO public.\($0) SELECT * FROM copy.\($0);" }.joined() + " COMMIT")
        for engine in [a, b] {
            #expect(throws: StoreError.self) { try engine.follow() }
            #expect(throws: KMSError.disabled) { _ = try engine.encrypt(keyID: key, plaintext: secret("x"), caller: caller) }
        }
        // An instance that never saw the newer trail (opened after the rollback) writes on the
        // older one, past the number a and b had seen: a fork, which they still refuse.
        let late = try engine()
        for _ in 0..<20 { _ = try late.encrypt(keyID: key, plaintext: secret("x"), caller: caller) }
        try late.flushAudit()
        for engine in [a, b] {
            #expect(throws: StoreError.self) { try engine.follow() }
            #expect(throws: (any Error).self) { try engine.flushAudit() }
        }
    }

    /// A trigger that keeps the state digest as it was (so that the others never see a change):
    /// the writer reads back what it wrote, and the change fails instead of being acknowledged.
    @Test func aWriteTheStoreDoesNotKeepFails() throws {
        let (a, b) = (try engine(), try engine())
        let key = try createKey(a)
        try b.follow()
        let raw = try PostgresDatabase(url: url)
        try raw.execute("""
            CREATE FUNCTION pin() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.value := OLD.value; RETURN NEW; END $$;
            CREATE TRIGGER pin BEFORE UPDATE ON meta FOR EACH ROW WHEN (OLD.name = 'state_digest') EXECUTE FUNCTION pin();
            """)
        #expect(throws: KMSError.internalError) { try a.disableKey(keyID: key, caller: caller) }
        for engine in [a, b] {
            _ = try engine.encrypt(keyID: key, plaintext: secret("x"), caller: caller)
            #expect(try engine.describeKey(keyID: key, caller: caller).keyMetadata.enabled)
        }
    }
}
