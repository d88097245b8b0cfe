import Foundation
import KMSFSCrypto
import KMSStore
import Synchronization
import Testing
@testable import KMSEngine

/// One suite, both backends: what the engine writes comes back whole after a reopen, the audit
/// trail verifies, one writer at a time, and whoever can write the database but has no root key
/// cannot edit, delete, cut or plant anything unnoticed — on SQLite and on a real PostgreSQL.
@Suite(.serialized) struct StoreConformanceTests {
    /// Every kind of record the store holds, made through the engine; returns the key's ID.
    static func populate(_ f: EngineFixture) throws -> String {
        let key = try f.createKey("conformance").keyId
        try f.engine.createAlias(aliasName: "alias/conformance", targetKeyID: key, caller: f.caller)
        try f.engine.enableKeyRotation(keyID: key, caller: f.caller)
        _ = try f.engine.rotateKeyOnDemand(keyID: key, caller: f.caller)
        _ = try f.engine.createGrant(CreateGrantRequest(keyID: key, granteePrincipal: "arn:aws:iam::111122223333:role/reader",
                                                        operations: ["Decrypt"]), caller: f.caller)
        let account = try f.engine.createAccount(accountID: "222233334444", name: "second")
        _ = try f.engine.createAccessKey(account: account.accountID)
        let doomed = try f.createKey("doomed").keyId
        _ = try f.engine.scheduleKeyDeletion(keyID: doomed, pendingWindowInDays: 7, caller: f.caller)
        let disabled = try f.createKey("disabled").keyId
        try f.engine.disableKey(keyID: disabled, caller: f.caller)
        return key
    }

    /// What the engine says about its state, for before-and-after comparisons.
    static func snapshot(_ f: EngineFixture) throws -> [String] {
        let keys = try f.engine.listKeys(caller: f.caller).keys.map(\.keyId).sorted()
        var lines = try keys.map { key in
            let metadata = try f.engine.describeKey(keyID: key, caller: f.caller).keyMetadata
            return "\(key) \(metadata.keyState) \(metadata.description)"
        }
        lines += try f.engine.listAliases(caller: f.caller).aliases.map { "\($0.aliasName) \($0.targetKeyId ?? "-")" }.sorted()
        lines += f.engine.listAccounts().map(\.accountID).sorted()
        lines += f.engine.listAccessKeys().map { "\($0.accessKeyID) \($0.account)" }.sorted()
        return lines
    }

    @Test(arguments: Backend.allCases)
    func everythingWrittenIsReadBackAndTheTrailVerifies(backend: Backend) throws {
        let f = try EngineFixture(backend: backend)
        let key = try Self.populate(f)
        let context = ["purpose": "conformance"]
        let dataKey = try f.engine.generateDataKey(keyID: "alias/conformance", keySpec: .aes256, encryptionContext: context, caller: f.caller)
        let before = try Self.snapshot(f)
        try f.reopen()
        #expect(try Self.snapshot(f) == before)
        // The material (both versions) came back: the data key still opens.
        let opened = try f.engine.decrypt(ciphertextBlob: dataKey.ciphertextBlob, encryptionContext: context, caller: f.caller)
        #expect(opened.plaintext == dataKey.plaintext)
        #expect(try f.engine.listKeyRotations(keyID: key, caller: f.caller).rotations.count == 1)
        let verification = try f.engine.verifyAudit()
        #expect(verification.isIntact && verification.verifiedCount > 10)
    }

    @Test(arguments: Backend.allCases)
    func oneWriterAtATime(backend: Backend) throws {
        let f = try EngineFixture(backend: backend)
        _ = try f.createKey()
        let error = try #require(throws: StoreError.self) {
            try KMSEngine.open(path: f.storePath, rootKey: f.rootKey, clock: f.clock, schedulerInterval: nil)
        }
        #expect(error.description.contains("in use by another"))
        // Released when the first closes.
        try f.reopen()
        #expect(try f.engine.listKeys(caller: f.caller).keys.count == 1)
    }

    enum Tamper: String, CaseIterable, CustomStringConvertible {
        case recordEdited, grantDeleted, auditCut, triggerPlanted, primaryKeyDropped, materialVersionOutOfRange
        var description: String { rawValue }
    }

    /// Each edit by someone who can write the database is refused at the next open, naming why.
    @Test(arguments: Backend.allCases, Tamper.allCases)
    func editsOutsideKmsdAreRefused(backend: Backend, tamper: Tamper) throws {
        let f = try EngineFixture(backend: backend)
        _ = try Self.populate(f)
        try f.close()
        let database = try f.rawConnection()
        let expected: String
        switch tamper {
        case .recordEdited:
            try database.execute("UPDATE keys SET record = replace(record, 'Disabled', 'Enabled')")
            expected = "MAC does not verify"
        case .grantDeleted:
            try database.execute("DELETE FROM grants")
            expected = "not the set kmsd last wrote"
        case .auditCut:
            try database.execute("DELETE FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)")
            expected = "audit"
        case .triggerPlanted:
            switch backend {
            case .sqlite:
                try database.execute("CREATE TRIGGER planted AFTER INSERT ON grants BEGIN SELECT 1; END")
            case .postgres:
                try database.execute("""
                    CREATE FUNCTION planted() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
                    CREATE TRIGGER planted AFTER INSERT ON grants FOR EACH ROW EXECUTE FUNCTION planted()
                    """)
            }
            expected = "trigger planted"
        case .materialVersionOutOfRange:
            // Material rows carry no MAC (they are sealed): a version no UInt32 holds must be
            // refused, not trap the open.
            try database.execute("INSERT INTO key_material SELECT account, region, key_id, 4294967296, sealed FROM key_material LIMIT 1")
            expected = "malformed key_material row"
        case .primaryKeyDropped:
            switch backend {
            case .sqlite:
                try database.execute("""
                    CREATE TABLE grants_copy(grant_id TEXT, key_id TEXT NOT NULL, record TEXT NOT NULL, mac BLOB);
                    INSERT INTO grants_copy SELECT * FROM grants; DROP TABLE grants; ALTER TABLE grants_copy RENAME TO grants
                    """)
            case .postgres:
                try database.execute("ALTER TABLE grants DROP CONSTRAINT grants_pkey")
            }
            expected = "primary key"
        }
        let error = try #require(throws: StoreError.self) {
            try KMSEngine.open(path: f.storePath, rootKey: f.rootKey, clock: f.clock, schedulerInterval: nil)
        }
        #expect(error.description.contains(expected), "\(error)")
    }

    /// Many threads at once: every call is answered and audited, on either backend.
    @Test(arguments: Backend.allCases)
    func concurrentCallsAreAllStoredAndAudited(backend: Backend) throws {
        let f = try EngineFixture(backend: backend)
        let key = try f.createKey().keyId
        let failures = Atomic<Int>(0)
        do {
            let engine = f.engine!, caller = f.caller  // let go of before the reopen
            DispatchQueue.concurrentPerform(iterations: 8) { worker in
                for index in 0..<25 {
                    do {
                        _ = try engine.generateDataKey(keyID: key, keySpec: .aes256, encryptionContext: ["w": "\(worker)-\(index)"], caller: caller)
                        if index % 5 == 0 { _ = try engine.createKey(CreateKeyRequest(), caller: caller) }
                    } catch {
                        failures.add(1, ordering: .relaxed)
                    }
                }
            }
        }
        #expect(failures.load(ordering: .relaxed) == 0)
        try f.reopen()
        #expect(try f.engine.listKeys(caller: f.caller).keys.count == 1 + 8 * 5)
        let records = try f.engine.auditRecords().filter { $0.operation == "GenerateDataKey" }
        #expect(records.count == 200)
        #expect(try f.engine.verifyAudit().isIntact)
    }
}
