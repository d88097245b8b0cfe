import Foundation
import KMSFSCrypto
import Synchronization
import Testing
@testable import KMSEngine

@Suite struct CryptoOperationTests {
    @Test func encryptDecryptRoundTripWithAndWithoutKeyID() throws {
        let f = try EngineFixture()
        let key = try f.createKey()
        try f.engine.createAlias(aliasName: "alias/app", targetKeyID: key.keyId, caller: f.caller)
        let context = ["volume": "v1", "file": "42"]
        for keyID in [key.keyId, key.arn, "alias/app", "arn:aws:kms:eu-west-1:111122223333:alias/app"] {
            let sealed = try f.engine.encrypt(keyID: keyID, plaintext: secret("attack at dawn"), encryptionContext: context, caller: f.caller)
            #expect(sealed.keyId == key.arn)
            #expect(!sealed.ciphertextBlob.contains(bytes: Array("attack at dawn".utf8)))
            let opened = try f.engine.decrypt(ciphertextBlob: sealed.ciphertextBlob, encryptionContext: context, caller: f.caller)
            #expect(text(opened.plaintext) == "attack at dawn" && opened.keyId == key.arn)
            #expect(text(try f.engine.decrypt(ciphertextBlob: sealed.ciphertextBlob, encryptionContext: context, keyID: keyID, caller: f.caller).plaintext) == "attack at dawn")
        }
    }

    @Test func plaintextLimits() throws {
        let f = try EngineFixture()
        let key = try f.createKey().keyId
        let max = SecretBytes(copying: [UInt8](repeating: 7, count: 4096))
        let blob = try f.engine.encrypt(keyID: key, plaintext: max, caller: f.caller).ciphertextBlob
        #expect(try f.engine.decrypt(ciphertextBlob: blob, caller: f.caller).plaintext == max)
        #expect(throws: KMSError.validation) {
            try f.engine.encrypt(keyID: key, plaintext: SecretBytes(copying: [UInt8](repeating: 7, count: 4097)), caller: f.caller)
        }
        #expect(throws: KMSError.validation) { try f.engine.encrypt(keyID: key, plaintext: SecretBytes(copying: []), caller: f.caller) }
    }

    /// The context is bound: a different, missing, extra or re-split context fails.
    @Test func encryptionContextMustMatchExactly() throws {
        let f = try EngineFixture()
        let key = try f.createKey().keyId
        let blob = try f.engine.encrypt(keyID: key, plaintext: secret("p"), encryptionContext: ["ab": "c"], caller: f.caller).ciphertextBlob
        for wrong: EncryptionContext in [[:], ["a": "bc"], ["ab": "c", "x": "y"], ["ab": "C"], ["abc": ""]] {
            #expect(throws: KMSError.invalidCiphertext) { try f.engine.decrypt(ciphertextBlob: blob, encryptionContext: wrong, caller: f.caller) }
        }
        #expect(text(try f.engine.decrypt(ciphertextBlob: blob, encryptionContext: ["ab": "c"], caller: f.caller).plaintext) == "p")
        #expect(["ab": "c"].canonicalEncoding != ["a": "bc"].canonicalEncoding)
        #expect(["a": "1", "b": "2"].canonicalEncoding == ["b": "2", "a": "1"].canonicalEncoding)
    }

    @Test func wrongKeyAndDamagedBlobs() throws {
        let f = try EngineFixture()
        let a = try f.createKey().keyId, b = try f.createKey().keyId
        let blob = try f.engine.encrypt(keyID: a, plaintext: secret("p"), caller: f.caller).ciphertextBlob
        #expect(throws: KMSError.incorrectKey) { try f.engine.decrypt(ciphertextBlob: blob, keyID: b, caller: f.caller) }
        for index in blob.indices {
            var damaged = blob
            damaged[index] ^= 0x01
            #expect(throws: KMSError.self) { try f.engine.decrypt(ciphertextBlob: damaged, caller: f.caller) }
        }
        #expect(throws: KMSError.invalidCiphertext) { try f.engine.decrypt(ciphertextBlob: [1, 2, 3], caller: f.caller) }
        #expect(throws: KMSError.invalidCiphertext) { try f.engine.decrypt(ciphertextBlob: Array(blob.dropLast()), caller: f.caller) }
        #expect(throws: KMSError.validation) { try f.engine.decrypt(ciphertextBlob: [], caller: f.caller) }
        // Another account cannot use the blob even though it names the key: the key policy does not allow it.
        #expect(throws: KMSError.accessDenied) { try f.engine.decrypt(ciphertextBlob: blob, caller: f.otherAccount) }
    }

    @Test func keyStatesGateUse() throws {
        let f = try EngineFixture()
        let key = try f.createKey().keyId
        let blob = try f.engine.encrypt(keyID: key, plaintext: secret("p"), caller: f.caller).ciphertextBlob
        try f.engine.disableKey(keyID: key, caller: f.caller)
        #expect(throws: KMSError.disabled) { try f.engine.encrypt(keyID: key, plaintext: secret("p"), caller: f.caller) }
        #expect(throws: KMSError.disabled) { try f.engine.decrypt(ciphertextBlob: blob, caller: f.caller) }
        #expect(throws: KMSError.disabled) { try f.engine.generateDataKey(keyID: key, keySpec: .aes256, caller: f.caller) }
        try f.engine.enableKey(keyID: key, caller: f.caller)
        #expect(text(try f.engine.decrypt(ciphertextBlob: blob, caller: f.caller).plaintext) == "p")
        let alarms = Mutex<[PendingDeletionUse]>([])
        f.engine.onPendingDeletionUse { use in alarms.withLock { $0.append(use) } }
        _ = try f.engine.scheduleKeyDeletion(keyID: key, caller: f.caller)
        #expect(throws: KMSError.invalidState) { try f.engine.decrypt(ciphertextBlob: blob, caller: f.caller) }
        #expect(throws: KMSError.invalidState) { try f.engine.generateDataKey(keyID: key, keySpec: .aes256, caller: f.caller) }
        let uses = try f.engine.auditRecords().filter { $0.note == "use of a key pending deletion" }
        #expect(uses.count == 2)
        // The alarm: a counter and a listener call per use, naming the key and the operation.
        #expect(f.engine.pendingDeletionUses == 2)
        let raised = alarms.withLock { $0 }
        #expect(raised.map(\.operation) == ["Decrypt", "GenerateDataKey"] && raised.map(\.count) == [1, 2])
        #expect(raised.allSatisfy { $0.keyARN.hasSuffix(key) })
    }

    @Test func generateDataKeyVariants() throws {
        let f = try EngineFixture()
        let key = try f.createKey().keyId
        let context = ["file": "1"]
        let aes256 = try f.engine.generateDataKey(keyID: key, keySpec: .aes256, encryptionContext: context, caller: f.caller)
        #expect(aes256.plaintext?.count == 32)
        #expect(try f.engine.decrypt(ciphertextBlob: aes256.ciphertextBlob, encryptionContext: context, caller: f.caller).plaintext == aes256.plaintext!)
        #expect(try f.engine.generateDataKey(keyID: key, keySpec: .aes128, caller: f.caller).plaintext?.count == 16)
        #expect(try f.engine.generateDataKey(keyID: key, numberOfBytes: 1, caller: f.caller).plaintext?.count == 1)
        #expect(try f.engine.generateDataKey(keyID: key, numberOfBytes: 1024, caller: f.caller).plaintext?.count == 1024)
        #expect(throws: KMSError.validation) { try f.engine.generateDataKey(keyID: key, numberOfBytes: 0, caller: f.caller) }
        #expect(throws: KMSError.validation) { try f.engine.generateDataKey(keyID: key, numberOfBytes: 1025, caller: f.caller) }
        #expect(throws: KMSError.validation) { try f.engine.generateDataKey(keyID: key, caller: f.caller) }
        #expect(throws: KMSError.validation) { try f.engine.generateDataKey(keyID: key, keySpec: .aes256, numberOfBytes: 32, caller: f.caller) }
        let sealedOnly = try f.engine.generateDataKeyWithoutPlaintext(keyID: key, keySpec: .aes256, encryptionContext: context, caller: f.caller)
        #expect(sealedOnly.plaintext == nil)
        #expect(try f.engine.decrypt(ciphertextBlob: sealedOnly.ciphertextBlob, encryptionContext: context, caller: f.caller).plaintext.count == 32)
        // Two data keys are never the same.
        #expect(try f.engine.generateDataKey(keyID: key, keySpec: .aes256, caller: f.caller).plaintext
                != f.engine.generateDataKey(keyID: key, keySpec: .aes256, caller: f.caller).plaintext)
    }

    @Test func generateRandomLimits() throws {
        let f = try EngineFixture()
        #expect(try f.engine.generateRandom(numberOfBytes: 1, caller: f.caller).count == 1)
        #expect(try f.engine.generateRandom(numberOfBytes: 1024, caller: f.caller).count == 1024)
        #expect(throws: KMSError.validation) { try f.engine.generateRandom(numberOfBytes: 0, caller: f.caller) }
        #expect(throws: KMSError.validation) { try f.engine.generateRandom(numberOfBytes: 1025, caller: f.caller) }
    }

    @Test func reEncryptMovesBetweenKeysAndContexts() throws {
        let f = try EngineFixture()
        let a = try f.createKey(), b = try f.createKey()
        let blob = try f.engine.encrypt(keyID: a.keyId, plaintext: secret("moving"), encryptionContext: ["k": "1"], caller: f.caller).ciphertextBlob
        let moved = try f.engine.reEncrypt(ciphertextBlob: blob, sourceEncryptionContext: ["k": "1"], destinationKeyID: b.keyId,
                                           destinationEncryptionContext: ["k": "2"], caller: f.caller)
        #expect(moved.sourceKeyId == a.arn && moved.keyId == b.arn)
        #expect(text(try f.engine.decrypt(ciphertextBlob: moved.ciphertextBlob, encryptionContext: ["k": "2"], caller: f.caller).plaintext) == "moving")
        #expect(throws: KMSError.invalidCiphertext) {
            try f.engine.reEncrypt(ciphertextBlob: blob, sourceEncryptionContext: ["k": "2"], destinationKeyID: b.keyId, caller: f.caller)
        }
        #expect(throws: KMSError.incorrectKey) {
            try f.engine.reEncrypt(ciphertextBlob: blob, sourceEncryptionContext: ["k": "1"], sourceKeyID: b.keyId, destinationKeyID: b.keyId, caller: f.caller)
        }
        try f.engine.disableKey(keyID: b.keyId, caller: f.caller)
        #expect(throws: KMSError.disabled) {
            try f.engine.reEncrypt(ciphertextBlob: blob, sourceEncryptionContext: ["k": "1"], destinationKeyID: b.keyId, caller: f.caller)
        }
    }
}
