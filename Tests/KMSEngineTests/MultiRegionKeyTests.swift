import Foundation
import Testing
@testable import KMSEngine

/// Multi-Region keys with the engine's clock in hand: rotation of the primary reaches every
/// replica, and a primary scheduled for deletion waits for its replicas.
@Suite struct MultiRegionKeyTests {
    func multiRegionKey(_ f: EngineFixture) throws -> (keyID: String, replica: Caller) {
        var request = CreateKeyRequest()
        request.multiRegion = true
        let key = try f.engine.createKey(request, caller: f.caller).keyMetadata
        #expect(key.keyId.hasPrefix("mrk-") && key.multiRegion && key.multiRegionConfiguration?.keyType == .primary)
        _ = try f.engine.replicateKey(ReplicateKeyRequest(keyID: key.keyId, replicaRegion: "us-west-2"), caller: f.caller)
        var replica = f.caller
        replica.region = "us-west-2"
        return (key.keyId, replica)
    }

    @Test func automaticRotationOfThePrimaryReachesItsReplicas() throws {
        let f = try EngineFixture()
        let (keyID, replica) = try multiRegionKey(f)
        try f.engine.enableKeyRotation(keyID: keyID, rotationPeriodInDays: 90, caller: f.caller)
        #expect(try f.engine.getKeyRotationStatus(keyID: keyID, caller: replica).keyRotationEnabled)
        #expect(throws: KMSError.unsupportedOperation) { try f.engine.enableKeyRotation(keyID: keyID, caller: replica) }
        f.clock.advance(days: 91)
        #expect(try f.engine.runScheduledTasks().rotated == 1)  // the primary; its replica follows in the same transaction
        let sealed = try f.engine.encrypt(keyID: keyID, plaintext: secret("after the rotation"), caller: f.caller).ciphertextBlob
        #expect(text(try f.engine.decrypt(ciphertextBlob: sealed, caller: replica).plaintext) == "after the rotation")
        try f.reopen()
        #expect(text(try f.engine.decrypt(ciphertextBlob: sealed, caller: replica).plaintext) == "after the rotation")
        #expect(try f.engine.listKeyRotations(keyID: keyID, caller: replica).rotations.count == 1)
    }

    @Test func aPrimaryWaitsForItsReplicasToBeDeleted() throws {
        let f = try EngineFixture()
        let (keyID, replica) = try multiRegionKey(f)
        let scheduled = try f.engine.scheduleKeyDeletion(keyID: keyID, pendingWindowInDays: 7, caller: f.caller)
        #expect(scheduled.keyState == .pendingReplicaDeletion)
        _ = try f.engine.scheduleKeyDeletion(keyID: keyID, pendingWindowInDays: 10, caller: replica)
        f.clock.advance(days: 8)
        #expect(try f.engine.runScheduledTasks().deleted == 0)  // neither is due: the replica's window is 10 days
        f.clock.advance(days: 3)
        #expect(try f.engine.runScheduledTasks().deleted == 1)  // the replica; the primary's 7 days start now
        let primary = try f.engine.describeKey(keyID: keyID, caller: f.caller).keyMetadata
        #expect(primary.keyState == .pendingDeletion && primary.multiRegionConfiguration?.replicaKeys.isEmpty == true)
        #expect(primary.deletionDate == f.clock.now().addingTimeInterval(7 * 86_400))
        f.clock.advance(days: 8)
        #expect(try f.engine.runScheduledTasks().deleted == 1)
        #expect(throws: KMSError.notFound) { try f.engine.describeKey(keyID: keyID, caller: f.caller) }
    }

    @Test func cancellingAPrimaryWaitingForReplicasDisablesIt() throws {
        let f = try EngineFixture()
        let (keyID, _) = try multiRegionKey(f)
        _ = try f.engine.scheduleKeyDeletion(keyID: keyID, caller: f.caller)
        _ = try f.engine.cancelKeyDeletion(keyID: keyID, caller: f.caller)
        #expect(try f.engine.describeKey(keyID: keyID, caller: f.caller).keyMetadata.keyState == .disabled)
    }
}
