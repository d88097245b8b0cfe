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
        try b.catchUp(to: try b.store.generation())
        let sealed = try b.encrypt(keyID: key, plaintext: secret("shared"), caller: caller).ciphertextBlob
        try a.disableKey(keyID: key, caller: caller)
        #expect(throws: KMSError.disabled) {
            try b.catchUp(to: try b.store.generation())
            _ = try b.decrypt(ciphertextBlob: sealed, caller: caller)
        }
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
        try a.catchUp(to: try a.store.generation())
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
        try b.catchUp(to: try b.store.generation())
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
        try b.catchUp(to: try b.store.generation())
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

    /// Whoever can write the database edits a key record while the engines run, and moves the
    /// generation so that they load it: the load is refused, the engine keeps what it had and,
    /// past the bound, refuses requests rather than serve an unconfirmed state.
    @Test func anEditedRecordIsNotLoaded() throws {
        let a = try engine()
        let key = try createKey(a)
        try a.disableKey(keyID: key, caller: caller)
        let raw = try PostgresDatabase(url: url)
        try raw.execute("UPDATE keys SET record = replace(record, '\"Disabled\"', '\"Enabled\"'); UPDATE meta SET value = '99'::bytea WHERE name = 'generation'")
        #expect(throws: StoreError.self) { try a.catchUp(to: 99) }
        #expect(throws: KMSError.disabled) { _ = try a.encrypt(keyID: key, plaintext: secret("x"), caller: caller) }
    }
}
