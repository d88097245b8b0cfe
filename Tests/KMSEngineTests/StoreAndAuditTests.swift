import Foundation
import KMSFSCrypto
import Testing
@testable import KMSEngine
import KMSStore

@Suite struct StoreAndAuditTests {
    @Test func wrongRootKeyFailsAndChangesNothing() throws {
        let f = try EngineFixture()
        _ = try f.createKey()
        try f.close()
        #expect(throws: StoreError.self) { try KMSEngine.open(path: f.storePath, rootKey: try .generate(), clock: f.clock) }
        let error = try #require(throws: StoreError.self) { try KMSEngine.open(path: f.storePath, rootKey: try .generate(), clock: f.clock) }
        #expect(error.description.contains("root key does not match"))
        // Still opens with the right key, with everything in it.
        try f.reopen()
        #expect(try f.engine.listKeys(caller: f.caller).keys.count == 1)
        #expect(try f.engine.verifyAudit().isIntact)
    }

    @Test func rootKeySources() throws {
        let f = try EngineFixture()
        let hexFile = f.directory.appendingPathComponent("root.hex")
        try Data(f.rootKey.hexEncoded()).write(to: hexFile)
        let fromHex = try RootKey(loading: .file(hexFile.path))
        #expect(fromHex.key == f.rootKey.key)
        let rawFile = f.directory.appendingPathComponent("root.bin")
        try f.rootKey.key.withUnsafeBytes { try Data($0).write(to: rawFile) }
        #expect(try RootKey(loading: .file(rawFile.path)).key == f.rootKey.key)
        // A raw key whose last bytes look like line breaks is still 32 raw bytes.
        let awkward = Array(repeating: UInt8(0x41), count: 30) + [0x0d, 0x0a]
        try Data(awkward).write(to: rawFile)
        #expect(try RootKey(loading: .file(rawFile.path)).key == SecretBytes(copying: awkward))

        var pipe: [Int32] = [0, 0]
        #expect(Foundation.pipe(&pipe) == 0)
        let bytes = f.rootKey.hexEncoded()
        _ = bytes.withUnsafeBytes { write(pipe[1], $0.baseAddress, $0.count) }
        close(pipe[1])
        #expect(try RootKey(loading: .fileDescriptor(pipe[0])).key == f.rootKey.key)
        close(pipe[0])

        setenv("CREDENTIALS_DIRECTORY", f.directory.path, 1)
        defer { unsetenv("CREDENTIALS_DIRECTORY") }
        #expect(try RootKey(loading: .credential("root.hex")).key == f.rootKey.key)
        #expect(throws: KMSError.self) { try RootKey(loading: .credential("absent")) }
        try Data("short".utf8).write(to: rawFile)
        #expect(throws: KMSError.self) { try RootKey(loading: .file(rawFile.path)) }
        try Data(String(repeating: "zz", count: 32).utf8).write(to: rawFile)
        #expect(throws: KMSError.self) { try RootKey(loading: .file(rawFile.path)) }
    }

    /// Key material, data-key plaintext, plaintexts and the root key never appear in the store's
    /// files (database, WAL) or in the audit trail; the sealed material does.
    @Test func noSecretsInTheStoreOrTheAudit() throws {
        let f = try EngineFixture()
        let key = try f.createKey().keyId
        try f.engine.enableKeyRotation(keyID: key, caller: f.caller)
        _ = try f.engine.rotateKeyOnDemand(keyID: key, caller: f.caller)
        let dataKey = try f.engine.generateDataKey(keyID: key, keySpec: .aes256, encryptionContext: ["file": "secret-test"], caller: f.caller)
        let marker = "PLAINTEXT-MARKER-\(UUID().uuidString)"
        let blob = try f.engine.encrypt(keyID: key, plaintext: secret(marker), caller: f.caller).ciphertextBlob
        _ = try f.engine.decrypt(ciphertextBlob: blob, caller: f.caller)
        let files = try f.storeBytes()
        let audit = try f.engine.auditRecords()
        let auditBytes = audit.flatMap(\.canonicalJSON)
        #expect(!audit.isEmpty)
        let live = try #require(f.engine.state.withLock { $0.keys.all(key).first })
        var secrets: [[UInt8]] = [f.rootKey.key.withUnsafeBytes { Array($0) }, dataKey.plaintext!.withUnsafeBytes { Array($0) }, Array(marker.utf8)]
        for material in live.material.values { secrets.append(try material.storedBytes().withUnsafeBytes { Array($0) }) }
        #expect(secrets.count == 5)
        for (index, secret) in secrets.enumerated() {
            #expect(!files.contains(bytes: secret), "secret \(index) found in the store files")
            #expect(!auditBytes.contains(bytes: secret), "secret \(index) found in the audit trail")
            #expect(!files.contains(bytes: Array(hex(secret).utf8)), "secret \(index) found in hex in the store files")
        }
        #expect(files.contains(bytes: Array("secret-test".utf8)))  // contexts are audited, as CloudTrail does
    }

    @Test func everyCallIsAuditedAllowedOrRefused() throws {
        let f = try EngineFixture()
        let key = try f.createKey()
        _ = try f.engine.encrypt(keyID: key.keyId, plaintext: secret("x"), encryptionContext: ["a": "b"], caller: f.caller)
        _ = try? f.engine.describeKey(keyID: "alias/missing", caller: f.caller)
        _ = try? f.engine.enableKeyRotation(keyID: key.keyId, rotationPeriodInDays: 1, caller: f.caller)
        // A new store's first records say its records, and their set, are authenticated from the start.
        let all = try f.engine.auditRecords()
        #expect(all.prefix(2).map(\.operation) == ["AuthenticateRecords", "AuthenticateState"])
        let records = Array(all.dropFirst(2))
        #expect(records.map(\.operation) == ["CreateKey", "Encrypt", "DescribeKey", "EnableKeyRotation"])
        #expect(records.map(\.errorCode) == [nil, nil, "NotFoundException", "ValidationException"])
        #expect(records[1].keyARN == key.arn && records[1].encryptionContext == ["a": "b"])
        #expect(records.allSatisfy { $0.account == "111122223333" && $0.region == "eu-west-1" && $0.requestID == "test" })
        #expect(records[0].principal == "arn:aws:iam::111122223333:root")
        #expect(try f.engine.verifyAudit() == AuditVerification(verifiedCount: 6, problem: nil))
    }

    /// Editing, deleting, inserting or cutting off records is detected by the chain.
    @Test func tamperedAuditIsDetected() throws {
        func fixtureWithTrail() throws -> EngineFixture {
            let f = try EngineFixture()
            for _ in 0..<5 { _ = try f.createKey() }
            try f.engine.flushAudit()
            return f
        }
        func tamper(_ f: EngineFixture, _ sql: String) throws -> AuditVerification {
            let db = try SQLiteDatabase(path: f.storePath)
            try db.execute(sql)
            return try f.engine.verifyAudit()
        }
        var f = try fixtureWithTrail()
        #expect(try f.engine.verifyAudit().isIntact)
        #expect(try tamper(f, "UPDATE audit SET record = replace(record, 'CreateKey', 'CreateKez') WHERE seq = 3").problem == "record 3 was altered (MAC mismatch)")
        f = try fixtureWithTrail()
        #expect(try tamper(f, "DELETE FROM audit WHERE seq = 2").problem?.contains("record 2 is missing") == true)
        f = try fixtureWithTrail()
        #expect(try tamper(f, "DELETE FROM audit WHERE seq = 7").problem?.contains("missing from the end") == true)
        f = try fixtureWithTrail()
        #expect(try tamper(f, "UPDATE audit SET mac = (SELECT mac FROM audit WHERE seq = 1) WHERE seq = 2").isIntact == false)
        f = try fixtureWithTrail()
        #expect(try tamper(f, "UPDATE meta SET value = x'00' WHERE name = 'audit_head'").problem == "the audit head was altered")
        // A clean trail survives a reopen and keeps chaining.
        f = try fixtureWithTrail()
        try f.reopen()
        _ = try f.createKey()
        #expect(try f.engine.verifyAudit() == AuditVerification(verifiedCount: 8, problem: nil))
    }

    /// The hand-written canonical JSON reads back as the same record, escapes included.
    @Test func canonicalJSONRoundTrips() throws {
        let record = AuditRecord(time: Date(timeIntervalSince1970: 1_800_000_000.123), operation: "Encrypt",
                                 principal: "arn:aws:iam::111122223333:user/a\"b", account: "111122223333", region: "eu-west-1",
                                 keyARN: "arn:aws:kms:eu-west-1:111122223333:key/x", encryptionContext: ["z": "1", "a\n": "\\ü"],
                                 requestID: "r\u{01}", errorCode: nil, note: "n")
        let bytes = record.canonicalJSON
        #expect(try SealedAuditRecord(sequence: 1, record: bytes, mac: []).decoded() == record)
        #expect(String(decoding: bytes, as: UTF8.self).hasPrefix(#"{"account":"111122223333","encryptionContext":{"a\u000a":"\\ü","z":"1"},"keyARN""#))
    }

    @Test func concurrentCryptoCallsAreAllAudited() throws {
        let f = try EngineFixture()
        let key = try f.createKey().keyId
        let engine: KMSEngine = f.engine, caller = f.caller
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<250 { _ = try? engine.generateDataKey(keyID: key, keySpec: .aes256, caller: caller) }
        }
        #expect(try f.engine.verifyAudit() == AuditVerification(verifiedCount: 1003, problem: nil))
    }
}

/// Refused, unauthenticated requests cannot fill the store: what they claim is capped and their
/// records are rate limited (100 at once, then 10 a second), with the dropped ones counted.
@Suite struct RejectedRequestAuditTests {
    @Test func cappedAndRateLimited() throws {
        let f = try EngineFixture()
        let before = try f.engine.auditRecords().count
        let huge = String(repeating: "A", count: 10_000)
        for n in 0..<1_000 {
            f.engine.auditRejectedRequest(operation: huge, accessKeyID: huge + "\u{7}\n", region: huge, requestID: "r\(n)", errorCode: "InvalidSignatureException")
        }
        try f.engine.flushAudit()
        var records = try f.engine.auditRecords().dropFirst(before)
        #expect(records.count == 100)
        for record in records {
            #expect(record.operation.count <= 65 && record.region.count <= 33 && (record.note?.count ?? 0) < 200)
            #expect(record.note?.contains("\n") == false)
        }
        f.clock.advance(days: 1.0 / 86_400)
        f.engine.auditRejectedRequest(operation: "ListKeys", accessKeyID: "AKIA", region: "us-east-1", requestID: "after", errorCode: "InvalidSignatureException")
        try f.engine.flushAudit()
        records = try f.engine.auditRecords().dropFirst(before)
        #expect(records.count == 101)
        #expect(records.last?.note == "access key AKIA; 900 refused requests before this one not recorded (rate limit)")
    }
}

/// Whoever can write the store but has no root key cannot move a key to another account, give
/// an access key to another principal, point an alias elsewhere, widen a policy or forge a
/// grant: every record carries a MAC
/// under the root key, and a changed one stops the engine from opening, naming the record.
@Suite struct RecordAuthenticationTests {
    static let edits: [(String, String)] = [
        ("keys", "UPDATE keys SET record = replace(record, '111122223333', '444455556666')"),
        ("keys", "UPDATE keys SET account = '444455556666'"),
        ("aliases", "UPDATE aliases SET record = replace(record, 'moved', 'other')"),
        ("accounts", "UPDATE accounts SET record = replace(record, 'default', 'evil')"),
        ("access_keys", "UPDATE access_keys SET record = replace(record, 'alice', 'admin')"),
        ("keys", "UPDATE keys SET mac = NULL"),
        ("grants", "UPDATE grants SET record = replace(record, 'bob', 'eve')"),
        ("grants", "INSERT INTO grants SELECT 'forged', key_id, replace(record, grant_id, 'forged'), mac FROM grants"),
        ("identities", "UPDATE identities SET record = replace(record, 'kms:DescribeKey', 'kms:*') WHERE record LIKE '%alice%'"),
        ("keys", "UPDATE keys SET record = replace(record, 'Enable IAM User Permissions', 'Let everyone in')"),
    ]

    @Test(arguments: 0..<edits.count) func aChangedRecordIsRefused(_ index: Int) throws {
        let (table, sql) = Self.edits[index]
        let f = try EngineFixture()
        _ = try f.engine.createAccount(accountID: "111122223333", name: "default")
        _ = try f.engine.createAccessKey(account: "111122223333", userName: "alice")
        let key = try f.createKey().keyId
        try f.engine.createAlias(aliasName: "alias/moved", targetKeyID: key, caller: f.caller)
        let policy = #"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kms:DescribeKey","Resource":"*"}}"#
        try f.engine.putIdentityPolicy(.user, name: "alice", policyName: "read", document: policy, caller: f.caller)
        _ = try f.engine.createIdentity(.user, name: "bob", caller: f.caller)
        _ = try f.engine.createGrant(CreateGrantRequest(keyID: key, granteePrincipal: "arn:aws:iam::111122223333:user/bob",
                                                        operations: ["Decrypt"]), caller: f.caller)
        try f.reopen()  // untouched: every MAC verifies
        try f.close()
        let database = try SQLiteDatabase(path: f.storePath)
        try database.execute("PRAGMA foreign_keys=OFF")  // an attacker's edit need not keep kmsd's constraints
        _ = try database.query(sql)
        #expect(try database.query("SELECT changes()").first?.first == .integer(1) || table == "keys", "the edit changed nothing")
        withExtendedLifetime(database) {}
        do {
            try f.reopen()
            Issue.record("the engine opened a store whose \(table) record was changed")
        } catch let error as StoreError {
            #expect(error.description.contains("\(table)/") && error.description.contains("changed outside kmsd"), "\(error)")
        }
    }

    /// A store written before records had MACs gets them at its first open by this build, and
    /// is checked from then on; removing the marker to have edited records MAC'ed is refused,
    /// because the audit trail (which only the root key writes) says they were authenticated.
    @Test func aStoreFromBeforeIsUpgradedOnceAndItsMarkerCannotBeRemoved() throws {
        let f = try EngineFixture()
        try f.close()
        let path = f.directory.appendingPathComponent("old.sqlite").path
        do {
            // What a build before record MACs wrote: the root-key check and records without MACs.
            let store = try RelationalKeyStore(path: path)
            let check = try f.rootKey.seal(try SecretBytes.random(count: 32), label: "kmsd root key check", version: 0)
            try store.apply([.putMetadata(name: "root_check", value: check),
                             .putAccount(AccountRecord(accountID: "111122223333", name: "old", creationDate: Date()))], audit: [])
        }
        var engine: KMSEngine? = try KMSEngine.open(path: path, rootKey: f.rootKey, clock: f.clock, schedulerInterval: nil)
        #expect(engine!.listAccounts().map(\.name) == ["old"])
        #expect(try engine!.auditRecords().contains { $0.operation == "AuthenticateRecords" })
        engine = nil
        engine = try KMSEngine.open(path: path, rootKey: f.rootKey, clock: f.clock, schedulerInterval: nil)
        engine = nil
        var database: SQLiteDatabase? = try SQLiteDatabase(path: path)
        _ = try database!.query("UPDATE accounts SET record = replace(record, 'old', 'evil'), mac = NULL")
        _ = try database!.query("DELETE FROM meta WHERE name = 'records'")
        database = nil
        do {
            _ = try KMSEngine.open(path: path, rootKey: f.rootKey, clock: f.clock, schedulerInterval: nil)
            Issue.record("a store whose marker was removed opened")
        } catch let error as StoreError {
            #expect(error.description.contains("evidence of it is gone"), "\(error)")
        }
    }
}

/// The audit head kept outside the store: cutting records off the end of the trail, or rolling
/// the whole store back to an earlier copy, no longer leaves a store that opens as intact.
@Suite struct AuditAnchorTests {
    static func open(_ f: EngineFixture, anchor: String, create: Bool = false) throws -> KMSEngine {
        try KMSEngine.open(path: f.storePath, rootKey: f.rootKey, clock: f.clock, schedulerInterval: nil, auditAnchor: anchor, createAnchor: create)
    }

    /// A store with a trail and no anchor is refused unless told this is its first anchor.
    @Test func aMissingAnchorIsCreatedOnlyWhenAsked() throws {
        let f = try EngineFixture()
        _ = try f.createKey()
        try f.close()
        let anchor = f.directory.appendingPathComponent("anchor").path
        #expect(throws: StoreError.self) { try Self.open(f, anchor: anchor) }
        #expect(!FileManager.default.fileExists(atPath: anchor))
        var engine: KMSEngine? = try Self.open(f, anchor: anchor, create: true)
        engine = nil
        #expect(FileManager.default.fileExists(atPath: anchor))
        engine = try Self.open(f, anchor: anchor)
        withExtendedLifetime(engine) {}
    }

    /// A store with an anchor beside it and one key, closed.
    static func anchoredStoreWithAKey() throws -> (EngineFixture, String) {
        let f = try EngineFixture()
        try f.close()
        let anchor = f.directory.appendingPathComponent("anchor").path
        let engine = try open(f, anchor: anchor, create: true)
        _ = try engine.createKey(CreateKeyRequest(), caller: f.caller)
        try engine.flushAudit()
        return (f, anchor)
    }

    static func files(_ f: EngineFixture) throws -> [String: Data] {
        var copy: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: f.directory.path) where name.hasPrefix("keys.sqlite") {
            copy[name] = FileManager.default.contents(atPath: f.directory.appendingPathComponent(name).path)
        }
        return copy
    }

    @Test func aStoreRolledBackToAnEarlierCopyIsRefused() throws {
        let (f, anchor) = try Self.anchoredStoreWithAKey()
        var engine: KMSEngine?
        let earlier = try Self.files(f)
        engine = try Self.open(f, anchor: anchor)
        let key = try engine!.createKey(CreateKeyRequest(), caller: f.caller).keyMetadata.keyId
        _ = try engine!.encrypt(keyID: key, plaintext: secret("p"), caller: f.caller)
        try engine!.flushAudit()
        engine = nil
        // Untouched, it opens again.
        engine = try Self.open(f, anchor: anchor)
        engine = nil
        for (name, data) in earlier { try data.write(to: f.directory.appendingPathComponent(name)) }
        do {
            _ = try Self.open(f, anchor: anchor)
            Issue.record("a rolled-back store opened")
        } catch let error as StoreError {
            #expect(error.description.contains("rolled back"), "\(error)")
        }
    }

    /// The attack seen on main: the last audit records deleted and an older head put back.
    @Test func cuttingTheTailAndRestoringAnOlderHeadIsRefused() throws {
        let (f, anchor) = try Self.anchoredStoreWithAKey()
        var engine: KMSEngine?
        var database: SQLiteDatabase? = try SQLiteDatabase(path: f.storePath)
        let head = try database!.query("SELECT value FROM meta WHERE name = 'audit_head'").first!.first!
        let digest = try database!.query("SELECT value FROM meta WHERE name = 'state_digest'").first!.first!
        let last = try database!.query("SELECT max(seq) FROM audit").first!.first!
        database = nil
        engine = try Self.open(f, anchor: anchor)
        _ = try engine!.createKey(CreateKeyRequest(), caller: f.caller)
        try engine!.flushAudit()
        engine = nil
        database = try SQLiteDatabase(path: f.storePath)
        _ = try database!.query("DELETE FROM audit WHERE seq > ?1", [last])
        _ = try database!.query("UPDATE meta SET value = ?1 WHERE name = 'audit_head'", [head])
        database = nil
        // The state digest names the head it was written at: a cut trail alone no longer opens.
        #expect(throws: StoreError.self) { try KMSEngine.open(path: f.storePath, rootKey: f.rootKey, clock: f.clock, schedulerInterval: nil) }
        database = try SQLiteDatabase(path: f.storePath)
        _ = try database!.query("DELETE FROM keys WHERE key_id NOT IN (SELECT key_id FROM keys ORDER BY rowid LIMIT 1)")
        _ = try database!.query("UPDATE meta SET value = ?1 WHERE name = 'state_digest'", [digest])
        database = nil
        #expect(throws: StoreError.self) { try Self.open(f, anchor: anchor) }
        // Without the anchor a consistent older copy (trail, head, records and digest all put
        // back) is unseen by the store alone: that is what the anchor is for.
        #expect(try KMSEngine.open(path: f.storePath, rootKey: f.rootKey, clock: f.clock, schedulerInterval: nil).verifyAudit().isIntact)
    }

    @Test func aForgedAnchorIsRefused() throws {
        let (f, anchor) = try Self.anchoredStoreWithAKey()
        let mode = try FileManager.default.attributesOfItem(atPath: anchor)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        var bytes = try #require(FileManager.default.contents(atPath: anchor))
        #expect(bytes.count == 72)
        bytes[7] ^= 1
        try bytes.write(to: URL(fileURLWithPath: anchor))
        #expect(throws: StoreError.self) { try Self.open(f, anchor: anchor) }
    }
}
