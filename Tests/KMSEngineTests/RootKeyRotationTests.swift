import Foundation
import KMSFSCrypto
import KMSFSTestSupport
import KMSStore
import Synchronization
import Testing
@testable import KMSEngine

/// `kmsd admin rotate-root-key`: every sealed row sealed again and every record MAC'ed again
/// under the new root key, in one transaction, while the engine serves; the audit chain goes on
/// in a new segment; what users see (ciphertexts, KeyMaterialIds, access keys) does not change;
/// and the old key opens nothing the store holds.
@Suite(.serialized) struct RootKeyRotationTests {
    /// A store with a symmetric key (and a ciphertext under it), an HMAC key, a signing key and
    /// an access key: one of each kind of sealed row.
    struct Contents {
        var symmetric: KeyMetadata
        var ciphertext: [UInt8]
        var hmac: String
        var tag: [UInt8]
        var accessKeyID: String
        var secret: String
    }

    static func fill(_ f: EngineFixture) throws -> Contents {
        let symmetric = try f.createKey("symmetric")
        _ = try f.engine.rotateKeyOnDemand(keyID: symmetric.keyId, caller: f.caller)
        let ciphertext = try f.engine.encrypt(keyID: symmetric.keyId, plaintext: secret("before the rotation"), caller: f.caller).ciphertextBlob
        var request = CreateKeyRequest()
        request.keySpec = .hmac256
        request.keyUsage = .generateVerifyMAC
        let hmac = try f.engine.createKey(request, caller: f.caller).keyMetadata.keyId
        let tag = try f.engine.generateMac(keyID: hmac, message: [1, 2, 3], macAlgorithm: .hmacSHA256, caller: f.caller).mac
        request.keySpec = .eccNISTP256
        request.keyUsage = .signVerify
        _ = try f.engine.createKey(request, caller: f.caller)
        let (key, _) = try f.engine.createAccessKey(account: f.caller.account, createAccount: true)
        return Contents(symmetric: try f.engine.describeKey(keyID: symmetric.keyId, caller: f.caller).keyMetadata, ciphertext: ciphertext,
                        hmac: hmac, tag: tag, accessKeyID: key.record.accessKeyID, secret: key.secretAccessKey)
    }

    /// What a user sees of `contents` is as it was.
    static func expectUnchanged(_ contents: Contents, _ engine: KMSEngine, _ f: EngineFixture) throws {
        #expect(text(try engine.decrypt(ciphertextBlob: contents.ciphertext, caller: f.caller).plaintext) == "before the rotation")
        #expect(try engine.describeKey(keyID: contents.symmetric.keyId, caller: f.caller).keyMetadata.currentKeyMaterialId
                == contents.symmetric.currentKeyMaterialId)
        _ = try engine.verifyMac(keyID: contents.hmac, message: [1, 2, 3], mac: contents.tag, macAlgorithm: .hmacSHA256, caller: f.caller)
        #expect(engine.accessKey(contents.accessKeyID).map { text($0.secret) } == contents.secret)
        #expect(try engine.verifyAudit().isIntact)
    }

    @Test func aRotatedStoreServesOnAndOpensUnderTheNewKeyOnly() throws {
        let f = try EngineFixture()
        let contents = try Self.fill(f)
        let next = try RootKey.generate()
        let rotation = try f.engine.rotateRootKey(to: next)
        #expect(rotation.materialVersions == 4)  // two versions of one key, one HMAC key, one key pair
        #expect(rotation.accessKeys == 1)
        // Live: the engine goes on serving, and new keys are sealed under the new key.
        try Self.expectUnchanged(contents, f.engine, f)
        let after = try f.createKey("after")
        let sealed = try f.engine.encrypt(keyID: after.keyId, plaintext: secret("after"), caller: f.caller).ciphertextBlob
        try f.close()

        #expect(throws: StoreError.self) { _ = try KMSEngine.open(path: f.storePath, rootKey: f.rootKey, clock: f.clock, schedulerInterval: nil) }
        let reopened = try KMSEngine.open(path: f.storePath, rootKey: next, clock: f.clock, schedulerInterval: nil)
        try Self.expectUnchanged(contents, reopened, f)
        #expect(text(try reopened.decrypt(ciphertextBlob: sealed, caller: f.caller).plaintext) == "after")
        #expect(!reopened.openedUnderNextRootKey)
        let records = try reopened.auditRecords()
        #expect(records.filter { $0.operation == KMSEngine.rotateRootKeyOperation && $0.errorCode == nil }.count == 1)
    }

    /// The operator's window between the rotation and installing the new key: an instance
    /// started with the old key and the new one as its next opens the store under the new one.
    /// A filled store rotated to a new key, and closed.
    static func rotatedAndClosed() throws -> (EngineFixture, Contents, RootKey) {
        let f = try EngineFixture()
        let contents = try fill(f)
        let next = try RootKey.generate()
        _ = try f.engine.rotateRootKey(to: next)
        try f.close()
        return (f, contents, next)
    }

    @Test func theOldKeyWithTheNewOneAsNextOpensTheRotatedStore() throws {
        let (f, contents, next) = try Self.rotatedAndClosed()
        let engine = try KMSEngine.open(path: f.storePath, rootKey: f.rootKey, nextRootKey: next, clock: f.clock, schedulerInterval: nil)
        #expect(engine.openedUnderNextRootKey)
        try Self.expectUnchanged(contents, engine, f)
    }

    /// Whoever holds the old root key (the reason to rotate it) and can write the store opens
    /// none of its sealed rows and forges no record: every row is under the new key.
    @Test func theOldKeyOpensNothingAndForgesNothing() throws {
        let (f, contents, next) = try Self.rotatedAndClosed()
        let database = try f.rawConnection()
        let material = try database.query("SELECT account, region, key_id, version, sealed FROM key_material")
        #expect(material.count == 4)
        for row in material {
            let identity = KeyIdentity(account: row[0].text!, region: row[1].text!, keyID: row[2].text!)
            #expect((try? f.rootKey.open(row[4].blob!, label: identity.materialLabel, version: UInt32(row[3].integer!))) == nil)
        }
        let secretRow = try database.query("SELECT sealed_secret FROM access_keys WHERE access_key_id = ?1", [.text(contents.accessKeyID)])
        let record = try JSONDecoder().decode(AccessKeyRecord.self, from: Data((try database.query(
            "SELECT record FROM access_keys WHERE access_key_id = ?1", [.text(contents.accessKeyID)])[0][0].text ?? "").utf8))
        #expect((try? f.rootKey.open(secretRow[0][0].blob!, label: record.secretLabel, version: 0)) == nil)
        #expect((try? next.open(secretRow[0][0].blob!, label: record.secretLabel, version: 0)) != nil)
        for name in ["root_check", StoreKeys.fingerprintName, StoreKeys.historyName, RelationalKeyStore.stateDigestName] {
            let value = try database.query("SELECT value FROM meta WHERE name = ?1", [.text(name)]).first?.first?.blob
            #expect(value != nil, "\(name)")
            for label in [StoreKeys.checkLabel, StoreKeys.fingerprintLabel, StoreKeys.historyLabel, "kmsd state digest"] {
                #expect((try? f.rootKey.open(value ?? [], label: label, version: 0)) == nil)
            }
        }
        // The chain history or the fingerprint key removed (so that the trail, or KeyMaterialIds,
        // are judged under the new key alone): refused at open.
        for name in [StoreKeys.historyName, StoreKeys.fingerprintName] {
            let kept = try #require(try database.metadata(name))
            try database.query("DELETE FROM meta WHERE name = ?1", [.text(name)])
            #expect(throws: StoreError.self) { _ = try KMSEngine.open(path: f.storePath, rootKey: next, clock: f.clock, schedulerInterval: nil) }
            try database.query("INSERT INTO meta(name, value) VALUES(?1, ?2)", [.text(name), .blob(kept)])
        }
        _ = try KMSEngine.open(path: f.storePath, rootKey: next, clock: f.clock, schedulerInterval: nil)
        // A key's policy opened to everyone, MAC'ed under the old key: refused at open.
        let oldAuthenticator = try RecordAuthenticator(rootKey: f.rootKey)
        let row = try database.query("SELECT key_id, account, region, record FROM keys WHERE key_id = ?1", [.text(contents.symmetric.keyId)])[0]
        let opened = row[3].text!.replacingOccurrences(of: "Enable IAM User Permissions", with: "Let everyone in")
        #expect(opened != row[3].text!)
        let mac = oldAuthenticator.mac(table: "keys", [row[0].text!, row[1].text!, row[2].text!, opened])
        try database.query("UPDATE keys SET record = ?1, mac = ?2 WHERE key_id = ?3", [.text(opened), .blob(mac), .text(contents.symmetric.keyId)])
        #expect(throws: StoreError.self) {
            _ = try KMSEngine.open(path: f.storePath, rootKey: f.rootKey, clock: f.clock, schedulerInterval: nil)
        }
    }

    /// Two rotations make three chain segments; the trail verifies whole, here and offline, and
    /// an audit anchor left from before the last rotation (a crash between the commit and the
    /// anchor's rewrite) still checks the trail.
    @Test func theTrailVerifiesAcrossRotationsAndAnOlderAnchorStillChecks() throws {
        let f = try EngineFixture()
        let anchor = f.directory.appendingPathComponent("anchor").path
        try f.close()
        var engine: KMSEngine? = try KMSEngine.open(path: f.storePath, rootKey: f.rootKey, clock: f.clock, schedulerInterval: nil,
                                                    auditAnchor: anchor, createAnchor: true)
        _ = try engine!.createKey(CreateKeyRequest(), caller: f.caller)
        let second = try RootKey.generate(), third = try RootKey.generate()
        _ = try engine!.rotateRootKey(to: second)
        _ = try engine!.createKey(CreateKeyRequest(), caller: f.caller)
        try engine!.flushAudit()
        let anchorBefore = try #require(FileManager.default.contents(atPath: anchor))
        let rotation = try engine!.rotateRootKey(to: third)
        _ = try engine!.createKey(CreateKeyRequest(), caller: f.caller)
        #expect(try engine!.verifyAudit().isIntact)
        try engine!.flushAudit()
        engine = nil
        #expect(try AuditReader(path: f.storePath).verify(rootKey: third, anchorPath: anchor).isIntact)
        #expect(throws: StoreError.self) { _ = try AuditReader(path: f.storePath).verify(rootKey: second) }

        try anchorBefore.write(to: URL(fileURLWithPath: anchor))
        engine = try KMSEngine.open(path: f.storePath, rootKey: third, clock: f.clock, schedulerInterval: nil, auditAnchor: anchor)
        let verification = try engine!.verifyAudit()
        #expect(verification.isIntact)
        #expect(verification.verifiedCount > rotation.firstRecord)
        // An audit record edited in the first segment breaks the chain though its key is an old one.
        try engine!.flushAudit()
        engine = nil
        let database = try f.rawConnection()
        let first = try #require(try database.query("SELECT MIN(seq) FROM audit WHERE CAST(record AS TEXT) LIKE '%CreateKey%'").first?.first?.integer)
        #expect(first < rotation.firstRecord)
        try database.query("UPDATE audit SET record = CAST(replace(CAST(record AS TEXT), 'CreateKey', 'CreateKez') AS BLOB) WHERE seq = ?1", [.integer(first)])
        #expect(try AuditReader(path: f.storePath).verify(rootKey: third).problem == "record \(first) was altered (MAC mismatch)")
    }

    /// A store edited behind kmsd (here: an access key deleted, so that a revoked one could be
    /// put back later) is not blessed by a rotation's new MACs: it is refused, and stays under the
    /// old key as it was.
    @Test func aStoreEditedBehindKmsdIsNotRotated() throws {
        let f = try EngineFixture()
        let contents = try Self.fill(f)
        let database = try f.rawConnection()
        try database.query("DELETE FROM access_keys WHERE access_key_id = ?1", [.text(contents.accessKeyID)])
        #expect(throws: StoreError.self) { _ = try f.engine.rotateRootKey(to: try RootKey.generate()) }
        let check = try #require(try database.metadata("root_check"))
        #expect(StoreKeys.opensCheck(f.rootKey, check))
        #expect(try f.engine.auditRecords().last.map { $0.operation == KMSEngine.rotateRootKeyOperation && $0.errorCode != nil } == true)
    }

    /// An instance of a shared store that saw the root key rotated to a key it was not given
    /// refuses requests at once, and its audit anchor remembers: whoever kept the old key and puts
    /// an older copy of the store back (one that opens under the old key) cannot have that
    /// instance serve it after a restart, even given the new key as its next.
    @Test func anInstanceThatSawTheRotationNeverOpensAnOlderCopyUnderTheOldKey() throws {
        let url = try PostgresServer.shared.get().newDatabase()
        defer { if case let .success(server) = PostgresServer.shared { server.dropDatabase(url) } }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kmsd-retire-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (root, next, clock) = (try RootKey.generate(), try RootKey.generate(), ManualClock())
        let caller = Caller(account: "111122223333", region: "eu-west-1", requestID: "test")
        let (anchorA, anchorC, copy) = (directory.appendingPathComponent("a.anchor").path, directory.appendingPathComponent("c.anchor").path,
                                        directory.appendingPathComponent("before.backup").path)
        func open(_ key: RootKey, next: RootKey? = nil, anchor: String) throws -> KMSEngine {
            try KMSEngine.open(path: url, rootKey: key, nextRootKey: next, clock: clock, schedulerInterval: nil, auditAnchor: anchor,
                               createAnchor: true, shared: true)
        }
        var a: KMSEngine? = try open(root, anchor: anchorA)
        let key = try a!.createKey(CreateKeyRequest(), caller: caller).keyMetadata.keyId
        var c: KMSEngine? = try open(root, anchor: anchorC)
        _ = try StoreBackup.backup(StoreLocation(url), to: copy)
        _ = try a!.rotateRootKey(to: next)
        let error = #expect(throws: StoreError.self) { try c!.follow() }
        #expect("\(error!)".contains("root key was rotated"))
        #expect(throws: KMSError.self) { _ = try c!.describeKey(keyID: key, caller: caller) }
        #expect(FileManager.default.contents(atPath: anchorC)?.count == 104)
        a = nil
        c = nil
        /// An engine let go ends its database session from its follower's queue, a moment later:
        /// what needs the store to itself waits for that.
        func onceReleased<R>(_ body: () throws -> R) throws -> R {
            let deadline = Date().addingTimeInterval(10)
            while true {
                do { return try body() } catch where "\(error)".contains("is in use by") && Date() < deadline {
                    Thread.sleep(forTimeInterval: 0.05)
                }
            }
        }

        // Whoever kept the old key puts the copy from before the rotation back.
        try onceReleased { try RelationalKeyStore(location: StoreLocation(url)).dropTables() }
        _ = try onceReleased { try StoreBackup.restore(copy, into: StoreLocation(url)) }
        let refused = #expect(throws: StoreError.self) { _ = try onceReleased { try open(root, next: next, anchor: anchorC) } }
        #expect("\(refused!)".contains("rotated away"))
        // The control: an anchor that did not see the rotation lets the copy open (it cannot tell).
        let unaware = directory.appendingPathComponent("unaware.anchor").path
        _ = try onceReleased { try open(root, anchor: unaware) }
    }

    /// An instance without the new key learns of the rotation before it happens (an
    /// announcement in the store), stops answering, and writes its audit records while it still
    /// can: every call it answered is in the trail, though it answered calls up to the rotation.
    @Test func anInstanceWithoutTheNewKeyStopsBeforeTheRotationAndLosesNoAuditRecord() throws {
        let url = try PostgresServer.shared.get().newDatabase()
        defer { if case let .success(server) = PostgresServer.shared { server.dropDatabase(url) } }
        let (root, next, clock) = (try RootKey.generate(), try RootKey.generate(), ManualClock())
        let a = try KMSEngine.open(path: url, rootKey: root, clock: clock, schedulerInterval: nil, shared: true)
        // c's clock is 90 s ahead of a's: the pause is timed by c's own clock from when it sees
        // the announcement, not from a's time in it.
        let c = try KMSEngine.open(path: url, rootKey: root, clock: ManualClock(clock.now().addingTimeInterval(90)),
                                   schedulerInterval: nil, shared: true)
        let account = Caller(account: "111122223333", region: "eu-west-1", requestID: "setup")
        let key = try a.createKey(CreateKeyRequest(), caller: account).keyMetadata.keyId
        for _ in 0..<150 { _ = try a.createKey(CreateKeyRequest(), caller: account) }  // a rotation that takes a while
        try c.follow()
        let served = Mutex<[String]>([])
        let done = Atomic<Bool>(false)
        let load = Thread {
            var index = 0
            while !done.load(ordering: .acquiring) {
                index += 1
                let caller = Caller(account: account.account, region: account.region, requestID: "c-\(index)")
                if (try? c.encrypt(keyID: key, plaintext: secret("x"), caller: caller)) != nil { served.withLock { $0.append(caller.requestID) } }
            }
        }
        load.start()
        Thread.sleep(forTimeInterval: 0.3)
        _ = try a.rotateRootKey(to: next)
        done.store(true, ordering: .releasing)
        Thread.sleep(forTimeInterval: 0.1)
        #expect(throws: KMSError.self) { _ = try c.encrypt(keyID: key, plaintext: secret("x"), caller: account) }
        let recorded = Set(try a.auditRecords().map(\.requestID))
        let answered = served.withLock { $0 }
        #expect(!answered.isEmpty)
        let unrecorded = answered.filter { !recorded.contains($0) }
        let (missing, total, first) = (unrecorded.count, answered.count, unrecorded.first ?? "")
        #expect(missing == 0, "\(missing) of \(total) answered calls are not in the trail, from \(first)")
    }

    /// An announcement pauses an instance without the key; removed behind kmsd (the store's
    /// sealed generation does not move) it does not end the pause, and a rewritten one does not
    /// shorten it; gone with a change of the store, it does.
    @Test func aPauseEndsOnlyWithAChangeOfTheStore() throws {
        let url = try PostgresServer.shared.get().newDatabase()
        defer { if case let .success(server) = PostgresServer.shared { server.dropDatabase(url) } }
        let (root, clock) = (try RootKey.generate(), ManualClock())
        let caller = Caller(account: "111122223333", region: "eu-west-1", requestID: "test")
        let a = try KMSEngine.open(path: url, rootKey: root, clock: clock, schedulerInterval: nil, shared: true)
        let c = try KMSEngine.open(path: url, rootKey: root, clock: clock, schedulerInterval: nil, shared: true)
        let key = try a.createKey(CreateKeyRequest(), caller: caller).keyMetadata.keyId
        try c.follow()
        func announcement(pause: UInt32) -> [UInt8] {
            var bytes: [UInt8] = []
            bytes.appendUInt64(UInt64(clock.now().timeIntervalSince1970 * 1000))
            bytes.appendUInt32(pause)
            return bytes + [UInt8](repeating: 7, count: 60)
        }
        let database = try PostgresDatabase(url: url)
        try database.query("INSERT INTO meta(name, value) VALUES(?1, ?2)", [.text(KMSEngine.rotationAnnouncement), .blob(announcement(pause: 60))])
        try c.follow()
        #expect(throws: KMSError.self) { _ = try c.describeKey(keyID: key, caller: caller) }
        try database.query("UPDATE meta SET value = ?2 WHERE name = ?1", [.text(KMSEngine.rotationAnnouncement), .blob(announcement(pause: 0))])
        try c.follow()
        #expect(throws: KMSError.self) { _ = try c.describeKey(keyID: key, caller: caller) }
        try database.query("DELETE FROM meta WHERE name = ?1", [.text(KMSEngine.rotationAnnouncement)])
        try c.follow()
        #expect(throws: KMSError.self) { _ = try c.describeKey(keyID: key, caller: caller) }
        _ = try a.createKey(CreateKeyRequest(), caller: caller)
        try c.follow()
        #expect(try c.describeKey(keyID: key, caller: caller).keyMetadata.keyId == key)
    }

    @Test func rotatingToTheSameKeyIsRefusedAndChangesNothing() throws {
        let f = try EngineFixture()
        let contents = try Self.fill(f)
        #expect(throws: KMSError.validation) { _ = try f.engine.rotateRootKey(to: f.rootKey) }
        #expect(throws: KMSError.validation) { _ = try f.engine.rotateRootKey(to: RootKey(SecretBytes(copying: [UInt8](repeating: 0, count: 32)))) }
        // A key the store had before: its old checks and chain segments would pass for current ones.
        _ = try f.engine.rotateRootKey(to: try RootKey.generate())
        #expect(throws: KMSError.validation) { _ = try f.engine.rotateRootKey(to: f.rootKey) }
        try f.engine.flushAudit()
        #expect(try f.engine.verifyAudit().isIntact)
        try Self.expectUnchanged(contents, f.engine, f)
    }

    /// Instances of one shared store: the one given the new key as its next takes the rotation up
    /// at its next poll and serves on (its changes are under the new key); one without it stops
    /// and says that the root key was rotated.
    @Test func aSharedInstanceGivenTheNextKeyTakesTheRotationUp() throws {
        let url = try PostgresServer.shared.get().newDatabase()
        defer { if case let .success(server) = PostgresServer.shared { server.dropDatabase(url) } }
        let (root, next, clock) = (try RootKey.generate(), try RootKey.generate(), ManualClock())
        let caller = Caller(account: "111122223333", region: "eu-west-1", requestID: "test")
        func open(next: RootKey?) throws -> KMSEngine {
            try KMSEngine.open(path: url, rootKey: root, nextRootKey: next, clock: clock, schedulerInterval: nil, shared: true)
        }
        let (a, b, c) = (try open(next: nil), try open(next: next), try open(next: nil))
        let key = try a.createKey(CreateKeyRequest(), caller: caller).keyMetadata.keyId
        for _ in 0..<150 { _ = try a.createKey(CreateKeyRequest(), caller: caller) }  // a rotation that takes a while
        let sealed = try a.encrypt(keyID: key, plaintext: secret("shared"), caller: caller).ciphertextBlob
        try b.follow()
        try c.follow()
        // b answers all along: its records written while the rotation held the writers' turn
        // must go on under the new chain (the trail verifies below).
        let done = Atomic<Bool>(false)
        let load = Thread {
            while !done.load(ordering: .acquiring) { _ = try? b.encrypt(keyID: key, plaintext: secret("x"), caller: caller) }
        }
        load.start()
        Thread.sleep(forTimeInterval: 0.2)
        _ = try a.rotateRootKey(to: next)
        Thread.sleep(forTimeInterval: 0.3)
        done.store(true, ordering: .releasing)

        try b.follow()
        #expect(text(try b.decrypt(ciphertextBlob: sealed, caller: caller).plaintext) == "shared")
        let made = try b.createKey(CreateKeyRequest(), caller: caller).keyMetadata.keyId
        try a.follow()
        #expect(try a.describeKey(keyID: made, caller: caller).keyMetadata.keyId == made)
        let error = #expect(throws: StoreError.self) { try c.follow() }
        #expect("\(error!)".contains("root key was rotated"))
        #expect(try a.verifyAudit().isIntact)
        try b.flushAudit()
        #expect(try AuditReader(path: url).verify(rootKey: next).isIntact)
    }
}
