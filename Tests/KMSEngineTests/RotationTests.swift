import Foundation
import KMSFSCrypto
import Testing
@testable import KMSEngine

@Suite struct RotationTests {
    @Test func automaticRotationKeepsOldCiphertextsReadable() throws {
        let f = try EngineFixture()
        let key = try f.createKey().keyId
        #expect(throws: KMSError.validation) { try f.engine.enableKeyRotation(keyID: key, rotationPeriodInDays: 89, caller: f.caller) }
        #expect(throws: KMSError.validation) { try f.engine.enableKeyRotation(keyID: key, rotationPeriodInDays: 2561, caller: f.caller) }
        try f.engine.enableKeyRotation(keyID: key, rotationPeriodInDays: 90, caller: f.caller)
        let status = try f.engine.getKeyRotationStatus(keyID: key, caller: f.caller)
        #expect(status.keyRotationEnabled && status.rotationPeriodInDays == 90)
        #expect(status.nextRotationDate == f.clock.now().addingTimeInterval(90 * 86_400))

        var blobs: [[UInt8]] = []
        for round in 0..<3 {
            blobs.append(try f.engine.encrypt(keyID: key, plaintext: secret("round \(round)"), caller: f.caller).ciphertextBlob)
            f.clock.advance(days: 89)
            #expect(try f.engine.runScheduledTasks().rotated == 0)
            f.clock.advance(days: 1)
            #expect(try f.engine.runScheduledTasks().rotated == 1)
        }
        let rotations = try f.engine.listKeyRotations(keyID: key, caller: f.caller).rotations
        #expect(rotations.count == 3 && rotations.allSatisfy { $0.rotationType == .automatic })
        try f.reopen()
        for (round, blob) in blobs.enumerated() {
            #expect(text(try f.engine.decrypt(ciphertextBlob: blob, caller: f.caller).plaintext) == "round \(round)")
        }
        // New encryptions use the newest version (4): the blobs name their versions.
        let newest = try CiphertextBlob(parsing: f.engine.encrypt(keyID: key, plaintext: secret("x"), caller: f.caller).ciphertextBlob)
        #expect(newest.version == 4)
        try f.engine.disableKeyRotation(keyID: key, caller: f.caller)
        f.clock.advance(days: 400)
        #expect(try f.engine.runScheduledTasks().rotated == 0)
    }

    /// The engine's own timer carries out due work without anyone calling it.
    @Test func backgroundSchedulerRunsDueTasks() throws {
        let f = try EngineFixture()
        try f.close()
        let engine = try KMSEngine.open(path: f.storePath, rootKey: f.rootKey, clock: f.clock, schedulerInterval: .milliseconds(20))
        var request = CreateKeyRequest()
        request.description = "scheduled"
        let key = try engine.createKey(request, caller: f.caller).keyMetadata.keyId
        _ = try engine.scheduleKeyDeletion(keyID: key, pendingWindowInDays: 7, caller: f.caller)
        f.clock.advance(days: 8)
        var gone = false
        for _ in 0..<1500 where !gone {  // up to 30 s: tests run in parallel on 2 cores
            usleep(20_000)
            gone = (try? engine.describeKey(keyID: key, caller: f.caller)) == nil
        }
        #expect(gone)
    }

    @Test func disabledKeysAreNotRotated() throws {
        let f = try EngineFixture()
        let key = try f.createKey().keyId
        try f.engine.enableKeyRotation(keyID: key, caller: f.caller)
        try f.engine.disableKey(keyID: key, caller: f.caller)
        f.clock.advance(days: 366)
        #expect(try f.engine.runScheduledTasks().rotated == 0)
        #expect(throws: KMSError.disabled) { try f.engine.rotateKeyOnDemand(keyID: key, caller: f.caller) }
        #expect(throws: KMSError.disabled) { try f.engine.enableKeyRotation(keyID: key, caller: f.caller) }
        try f.engine.enableKey(keyID: key, caller: f.caller)
        #expect(try f.engine.runScheduledTasks().rotated == 1)
    }

    @Test func onDemandRotationLimit() throws {
        let f = try EngineFixture()
        let key = try f.createKey().keyId
        let first = try f.engine.encrypt(keyID: key, plaintext: secret("v1"), caller: f.caller).ciphertextBlob
        for _ in 0..<25 { _ = try f.engine.rotateKeyOnDemand(keyID: key, caller: f.caller) }
        #expect(throws: KMSError.limitExceeded) { try f.engine.rotateKeyOnDemand(keyID: key, caller: f.caller) }
        let page = try f.engine.listKeyRotations(keyID: key, limit: 10, caller: f.caller)
        #expect(page.rotations.count == 10 && page.truncated && page.rotations.allSatisfy { $0.rotationType == .onDemand })
        var total = page.rotations.count, marker = page.nextMarker
        while let next = marker {
            let more = try f.engine.listKeyRotations(keyID: key, limit: 10, marker: next, caller: f.caller)
            total += more.rotations.count
            marker = more.nextMarker
        }
        #expect(total == 25)
        #expect(text(try f.engine.decrypt(ciphertextBlob: first, caller: f.caller).plaintext) == "v1")
    }
}
