import Foundation
import KMSFSCrypto
import Testing
@testable import KMSEngine

@Suite struct KeyLifecycleTests {
    @Test func createDescribeAndList() throws {
        let f = try EngineFixture()
        let key = try f.createKey("first")
        #expect(key.keyState == .enabled && key.enabled)
        #expect(key.arn == "arn:aws:kms:eu-west-1:111122223333:key/\(key.keyId)")
        #expect(UUID(uuidString: key.keyId) != nil)
        #expect(key.keySpec == .symmetricDefault && key.keyUsage == .encryptDecrypt && key.origin == .awsKMS)
        #expect(key.keyManager == .customer && key.encryptionAlgorithms == [.symmetricDefault])
        #expect(try f.engine.describeKey(keyID: key.keyId, caller: f.caller).keyMetadata == key)
        #expect(try f.engine.describeKey(keyID: key.arn, caller: f.caller).keyMetadata == key)
        #expect(throws: KMSError.notFound) { try f.engine.describeKey(keyID: UUID().uuidString, caller: f.caller) }
        #expect(throws: KMSError.notFound) { try f.engine.describeKey(keyID: key.keyId, caller: f.otherAccount) }
        #expect(throws: KMSError.invalidArn) { try f.engine.describeKey(keyID: "arn:aws:s3:::bucket", caller: f.caller) }
        #expect(try f.engine.getKeyPolicy(keyID: key.keyId, caller: f.caller).contains("arn:aws:iam::111122223333:root"))
    }

    @Test func listKeysPages() throws {
        let f = try EngineFixture()
        let ids = try (0..<7).map { _ in try f.createKey().keyId }.sorted()
        var seen: [String] = []
        var marker: String? = nil
        repeat {
            let page = try f.engine.listKeys(limit: 3, marker: marker, caller: f.caller)
            #expect(page.keys.count <= 3)
            seen += page.keys.map(\.keyId)
            marker = page.nextMarker
            #expect(page.truncated == (marker != nil))
        } while marker != nil
        #expect(seen == ids)
        #expect(try f.engine.listKeys(caller: f.otherAccount).keys.count == 0)
        #expect(throws: KMSError.validation) { try f.engine.listKeys(limit: 0, caller: f.caller) }
        #expect(throws: KMSError.validation) { try f.engine.listKeys(limit: 1001, caller: f.caller) }
        #expect(throws: KMSError.invalidMarker) { try f.engine.listKeys(marker: "garbage", caller: f.caller) }
    }

    @Test func createKeyLimitsAndUnsupportedSpecs() throws {
        let f = try EngineFixture()
        var request = CreateKeyRequest()
        request.description = String(repeating: "d", count: 8193)
        #expect(throws: KMSError.validation) { try f.engine.createKey(request, caller: f.caller) }
        request = CreateKeyRequest()
        request.keySpec = .mlDSA44
        request.keyUsage = .signVerify
        #expect(throws: KMSError.unsupportedOperation) { try f.engine.createKey(request, caller: f.caller) }
        request.keySpec = .eccNISTP256
        request.keyUsage = .encryptDecrypt
        #expect(throws: KMSError.validation) { try f.engine.createKey(request, caller: f.caller) }
        request = CreateKeyRequest()
        request.policy = "not json"
        #expect(throws: KMSError(.malformedPolicyDocument, "")) { try f.engine.createKey(request, caller: f.caller) }
        request = CreateKeyRequest()
        request.tags = [Tag(tagKey: "aws:reserved", tagValue: "x")]
        #expect(throws: KMSError.tag) { try f.engine.createKey(request, caller: f.caller) }
    }

    /// Every state transition AWS allows, and the ones it refuses.
    @Test func stateTransitions() throws {
        let f = try EngineFixture()
        let key = try f.createKey().keyId
        let e: KMSEngine = f.engine, c = f.caller
        try e.disableKey(keyID: key, caller: c)
        #expect(try e.describeKey(keyID: key, caller: c).keyMetadata.keyState == .disabled)
        try e.disableKey(keyID: key, caller: c)  // idempotent
        try e.enableKey(keyID: key, caller: c)
        #expect(try e.describeKey(keyID: key, caller: c).keyMetadata.keyState == .enabled)

        #expect(throws: KMSError.validation) { try e.scheduleKeyDeletion(keyID: key, pendingWindowInDays: 6, caller: c) }
        #expect(throws: KMSError.validation) { try e.scheduleKeyDeletion(keyID: key, pendingWindowInDays: 31, caller: c) }
        let scheduled = try e.scheduleKeyDeletion(keyID: key, caller: c)
        #expect(scheduled.pendingWindowInDays == 30 && scheduled.keyState == .pendingDeletion)
        #expect(scheduled.deletionDate == f.clock.now().addingTimeInterval(30 * 86_400))
        let described = try e.describeKey(keyID: key, caller: c).keyMetadata
        #expect(described.keyState == .pendingDeletion && described.deletionDate == scheduled.deletionDate && !described.enabled)
        #expect(throws: KMSError.invalidState) { try e.enableKey(keyID: key, caller: c) }
        #expect(throws: KMSError.invalidState) { try e.disableKey(keyID: key, caller: c) }
        #expect(throws: KMSError.invalidState) { try e.scheduleKeyDeletion(keyID: key, caller: c) }
        #expect(throws: KMSError.invalidState) { try e.updateKeyDescription(keyID: key, description: "x", caller: c) }

        #expect(try e.cancelKeyDeletion(keyID: key, caller: c).hasSuffix(key))
        #expect(try e.describeKey(keyID: key, caller: c).keyMetadata.keyState == .disabled)
        #expect(throws: KMSError.invalidState) { try e.cancelKeyDeletion(keyID: key, caller: c) }
        try e.enableKey(keyID: key, caller: c)
        try e.updateKeyDescription(keyID: key, description: "renamed", caller: c)
        #expect(try e.describeKey(keyID: key, caller: c).keyMetadata.description == "renamed")
        // Management calls take key IDs and ARNs, not aliases.
        try e.createAlias(aliasName: "alias/lifecycle", targetKeyID: key, caller: c)
        #expect(throws: KMSError.notFound) { try e.disableKey(keyID: "alias/lifecycle", caller: c) }
    }

    /// External-origin keys wait for imported material: PendingImport, unusable.
    @Test func externalOriginIsPendingImport() throws {
        let f = try EngineFixture()
        var request = CreateKeyRequest()
        request.origin = .external
        let key = try f.engine.createKey(request, caller: f.caller).keyMetadata
        #expect(key.keyState == .pendingImport)
        #expect(throws: KMSError.invalidState) { try f.engine.encrypt(keyID: key.keyId, plaintext: secret("x"), caller: f.caller) }
        #expect(throws: KMSError.invalidState) { try f.engine.enableKey(keyID: key.keyId, caller: f.caller) }
        #expect(throws: KMSError.unsupportedOperation) { try f.engine.enableKeyRotation(keyID: key.keyId, caller: f.caller) }
    }

    /// A CancelKeyDeletion that lands between the scheduler's list of due keys and its step on
    /// one of them wins: the step re-checks the key under the lock and leaves it alone.
    @Test func aCancelledDeletionIsNeverCarriedOut() throws {
        let f = try EngineFixture()
        let key = try f.createKey().keyId
        let blob = try f.engine.encrypt(keyID: key, plaintext: secret("stay"), caller: f.caller).ciphertextBlob
        _ = try f.engine.scheduleKeyDeletion(keyID: key, pendingWindowInDays: 7, caller: f.caller)
        f.clock.advance(days: 8)
        let stale = try #require(f.engine.state.withLock { $0.keys.all(key).first?.record })  // what the scheduler listed
        _ = try f.engine.cancelKeyDeletion(keyID: key, caller: f.caller)
        #expect(try f.engine.carryOut(stale, now: f.clock.now()) == .nothing)
        #expect(try f.engine.runScheduledTasks().deleted == 0)
        try f.engine.enableKey(keyID: key, caller: f.caller)
        #expect(try f.engine.decrypt(ciphertextBlob: blob, caller: f.caller).plaintext == secret("stay"))
        // And one still pending is carried out by the same step.
        _ = try f.engine.scheduleKeyDeletion(keyID: key, pendingWindowInDays: 7, caller: f.caller)
        f.clock.advance(days: 8)
        let due = try #require(f.engine.state.withLock { $0.keys.all(key).first?.record })
        #expect(try f.engine.carryOut(due, now: f.clock.now()) == .deleted)
    }

    /// After the deletion date the scheduler destroys the key: gone from every view, and its
    /// ciphertexts no longer decrypt; before it, nothing happens.
    @Test func purgeAfterTheDeletionDate() throws {
        let f = try EngineFixture()
        let key = try f.createKey().keyId
        try f.engine.createAlias(aliasName: "alias/doomed", targetKeyID: key, caller: f.caller)
        let blob = try f.engine.encrypt(keyID: key, plaintext: secret("bye"), caller: f.caller).ciphertextBlob
        _ = try f.engine.scheduleKeyDeletion(keyID: key, pendingWindowInDays: 7, caller: f.caller)
        #expect(throws: KMSError.invalidState) { try f.engine.decrypt(ciphertextBlob: blob, caller: f.caller) }
        f.clock.advance(days: 6.9)
        #expect(try f.engine.runScheduledTasks().deleted == 0)
        f.clock.advance(days: 0.2)
        #expect(try f.engine.runScheduledTasks().deleted == 1)
        #expect(throws: KMSError.notFound) { try f.engine.describeKey(keyID: key, caller: f.caller) }
        #expect(throws: KMSError.notFound) { try f.engine.decrypt(ciphertextBlob: blob, caller: f.caller) }
        #expect(try f.engine.listAliases(caller: f.caller).aliases.isEmpty)
        try f.reopen()
        #expect(throws: KMSError.notFound) { try f.engine.decrypt(ciphertextBlob: blob, caller: f.caller) }
        #expect(try f.engine.listKeys(caller: f.caller).keys.count == 0)
    }
}
