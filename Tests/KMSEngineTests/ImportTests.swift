import Foundation
import KMSFSCrypto
import Testing
@testable import KMSEngine

/// Imported material over time, under a manual clock: expiry deletes it and the key returns to
/// PendingImport (ciphertexts wait for the same material), import tokens last 24 hours.
@Suite struct ImportTests {
    static func externalKey(_ f: EngineFixture) throws -> String {
        var request = CreateKeyRequest()
        request.origin = .external
        return try f.engine.createKey(request, caller: f.caller).keyMetadata.keyId
    }

    static func wrapped(_ f: EngineFixture, key: String, material: SecretBytes) throws -> (token: [UInt8], wrapped: [UInt8]) {
        let parameters = try f.engine.getParametersForImport(keyID: key, wrappingAlgorithm: .rsaesOAEPSHA256, wrappingKeySpec: .rsa2048,
                                                             caller: f.caller)
        let wrapping = try AsymmetricKey(publicKeyDER: parameters.publicKey)
        return (parameters.importToken, try wrapping.encryptOAEP(material, digest: .sha256))
    }

    @Test func expiredMaterialIsDeletedAndOnlyTheSameComesBack() throws {
        let f = try EngineFixture()
        let key = try Self.externalKey(f)
        let material = try SecretBytes.random(count: 32)
        var (token, wrapped) = try Self.wrapped(f, key: key, material: material)
        try f.engine.importKeyMaterial(keyID: key, importToken: token, encryptedKeyMaterial: wrapped,
                                       validTo: f.clock.now().addingTimeInterval(86_400), caller: f.caller)
        let blob = try f.engine.encrypt(keyID: key, plaintext: SecretBytes(copying: Array("kept".utf8)), caller: f.caller).ciphertextBlob
        #expect(try f.engine.runScheduledTasks().expired == 0)
        f.clock.advance(days: 2)
        // Unusable at once, before the scheduler has deleted it.
        #expect(throws: KMSError.invalidState) { try f.engine.decrypt(ciphertextBlob: blob, caller: f.caller) }
        #expect(try f.engine.runScheduledTasks().expired == 1)
        #expect(try f.engine.describeKey(keyID: key, caller: f.caller).keyMetadata.keyState == .pendingImport)
        #expect(throws: KMSError.invalidState) { try f.engine.decrypt(ciphertextBlob: blob, caller: f.caller) }
        try f.reopen()  // the store agrees: no material, PendingImport
        #expect(try f.engine.describeKey(keyID: key, caller: f.caller).keyMetadata.keyState == .pendingImport)
        (token, wrapped) = try Self.wrapped(f, key: key, material: try SecretBytes.random(count: 32))
        #expect(throws: KMSError(.incorrectKeyMaterial, "")) {
            try f.engine.importKeyMaterial(keyID: key, importToken: token, encryptedKeyMaterial: wrapped, caller: f.caller)
        }
        (token, wrapped) = try Self.wrapped(f, key: key, material: material)
        try f.engine.importKeyMaterial(keyID: key, importToken: token, encryptedKeyMaterial: wrapped, caller: f.caller)
        #expect(try f.engine.decrypt(ciphertextBlob: blob, caller: f.caller).plaintext == SecretBytes(copying: Array("kept".utf8)))
        // Material that does not expire is left alone by the scheduler.
        f.clock.advance(days: 400)
        #expect(try f.engine.runScheduledTasks().expired == 0)
    }

    @Test func importTokensExpireAfterADay() throws {
        let f = try EngineFixture()
        let key = try Self.externalKey(f)
        let (token, wrapped) = try Self.wrapped(f, key: key, material: try SecretBytes.random(count: 32))
        f.clock.advance(days: 1.01)
        #expect(throws: KMSError(.expiredImportToken, "")) {
            try f.engine.importKeyMaterial(keyID: key, importToken: token, encryptedKeyMaterial: wrapped, caller: f.caller)
        }
        #expect(try f.engine.describeKey(keyID: key, caller: f.caller).keyMetadata.keyState == .pendingImport)
    }

    @Test func materialPendingRotationExpiresAloneAndTheKeyStaysUsable() throws {
        let f = try EngineFixture()
        let key = try Self.externalKey(f)
        var (token, wrapped) = try Self.wrapped(f, key: key, material: try SecretBytes.random(count: 32))
        let first = try f.engine.importKeyMaterial(keyID: key, importToken: token, encryptedKeyMaterial: wrapped, caller: f.caller).keyMaterialID
        (token, wrapped) = try Self.wrapped(f, key: key, material: try SecretBytes.random(count: 32))
        let next = try f.engine.importKeyMaterial(keyID: key, importToken: token, encryptedKeyMaterial: wrapped,
                                                  validTo: f.clock.now().addingTimeInterval(86_400), importType: .new, caller: f.caller).keyMaterialID
        f.clock.advance(days: 2)
        #expect(try f.engine.runScheduledTasks().expired == 1)
        try f.reopen()
        let metadata = try f.engine.describeKey(keyID: key, caller: f.caller).keyMetadata
        #expect(metadata.keyState == .enabled && metadata.currentKeyMaterialId == first)
        let materials = try f.engine.listKeyRotations(keyID: key, allKeyMaterial: true, caller: f.caller).rotations
        #expect(materials.map(\.keyMaterialId) == [first, next])
        #expect(materials.map(\.importState) == [.imported, .pendingImport])
        #expect(materials.map(\.keyMaterialState) == [.current, .pendingRotation])
        // Expired material pending rotation cannot become current.
        #expect(throws: KMSError.validation) { try f.engine.rotateKeyOnDemand(keyID: key, caller: f.caller) }
    }

    /// Deleted imported material stays deleted when whoever can write the store puts its row back
    /// (material rows carry no MAC): the record says it is gone, and it is not opened.
    @Test func deletedMaterialPutBackIsNotOpened() throws {
        let f = try EngineFixture()
        let key = try Self.externalKey(f)
        var (token, wrapped) = try Self.wrapped(f, key: key, material: try SecretBytes.random(count: 32))
        let first = try f.engine.importKeyMaterial(keyID: key, importToken: token, encryptedKeyMaterial: wrapped, caller: f.caller).keyMaterialID
        let blob = try f.engine.encrypt(keyID: key, plaintext: SecretBytes(copying: Array("old".utf8)), caller: f.caller).ciphertextBlob
        (token, wrapped) = try Self.wrapped(f, key: key, material: try SecretBytes.random(count: 32))
        try f.engine.importKeyMaterial(keyID: key, importToken: token, encryptedKeyMaterial: wrapped, importType: .new, caller: f.caller)
        _ = try f.engine.rotateKeyOnDemand(keyID: key, caller: f.caller)
        let saved = try f.rawConnection().query("SELECT account, region, key_id, version, sealed FROM key_material WHERE version = 1")
        #expect(saved.count == 1)
        _ = try f.engine.deleteImportedKeyMaterial(keyID: key, keyMaterialID: first, caller: f.caller)
        try f.close()
        try f.rawConnection().query("INSERT INTO key_material(account, region, key_id, version, sealed) VALUES(?1, ?2, ?3, ?4, ?5)", saved[0].values)
        try f.reopen()
        #expect(throws: KMSError.self) { try f.engine.decrypt(ciphertextBlob: blob, caller: f.caller) }
        _ = try f.engine.encrypt(keyID: key, plaintext: SecretBytes(copying: Array("new".utf8)), caller: f.caller)
    }

    /// A record written when a key had one imported material (fingerprint, expiry on the key,
    /// no versions once deleted) reads as that material on version 1.
    @Test func oneMaterialRecordsMigrateToVersionOne() throws {
        let f = try EngineFixture()
        let key = try Self.externalKey(f)
        var record = try #require(f.engine.state.withLock { $0.keys.all(key).first?.record })
        record.materialFingerprint = String(repeating: "ab", count: 32)
        record.expirationModel = .expires
        record.validTo = Date(timeIntervalSince1970: 2_000_000_000)
        let deleted = record.migrated()
        #expect(deleted.versions.count == 1 && deleted.versions[0].materialID == record.materialFingerprint)
        #expect(deleted.versions[0].expirationModel == .expires && deleted.versions[0].validTo == record.validTo)
        #expect(deleted.materialFingerprint == nil && deleted.expirationModel == nil && deleted.validTo == nil)
        #expect(deleted.migrated() == deleted)
    }
}
