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
        let (a, b) = (try engine(), try engine())
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

    /// An edited record: the load is refused, and the engine keeps what it had.
    @Test func anEditedRecordIsNotLoaded() throws {
        let (a, b) = (try engine(), try engine())
        let (key, other) = (try createKey(a), try createKey(a))
        try a.disableKey(keyID: key, caller: caller)
        try b.follow()
        let raw = try PostgresDatabase(url: url)
        try raw.query("UPDATE keys SET record = replace(record, '\"Disabled\"', '\"Enabled\"') WHERE key_id = ?1", [.text(key)])
        // Another change, so that b loads the store again.
        try a.tagResource(keyID: other, tags: [Tag(tagKey: "a", tagValue: "b")], caller: caller)
        #expect(throws: StoreError.self) { try b.follow() }
        #expect(throws: KMSError.disabled) { _ = try b.encrypt(keyID: key, plaintext: secret("x"), caller: caller) }
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
