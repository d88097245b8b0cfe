import Testing
@testable import KMSEngine

@Suite struct ServiceManagedKeyTests {
    @Test func describableUsableOnlyThroughTheServiceNeverManageable() throws {
        let f = try EngineFixture()
        let key = try f.engine.serviceManagedKey(service: "kmsfs", caller: f.caller)
        #expect(key.keyManager == .aws)
        #expect(try f.engine.serviceManagedKey(service: "kmsfs", caller: f.caller).keyId == key.keyId)  // created once
        #expect(try f.engine.describeKey(keyID: "alias/aws/kmsfs", caller: f.caller).keyMetadata.keyId == key.keyId)
        #expect(try f.engine.getKeyRotationStatus(keyID: key.keyId, caller: f.caller).keyRotationEnabled)

        var viaKMSFS = f.caller
        viaKMSFS.viaService = "kmsfs"
        let dataKey = try f.engine.generateDataKey(keyID: "alias/aws/kmsfs", keySpec: .aes256, caller: viaKMSFS)
        #expect(try f.engine.decrypt(ciphertextBlob: dataKey.ciphertextBlob, caller: viaKMSFS).plaintext == dataKey.plaintext!)

        #expect(throws: KMSError.accessDenied) { try f.engine.generateDataKey(keyID: "alias/aws/kmsfs", keySpec: .aes256, caller: f.caller) }
        #expect(throws: KMSError.accessDenied) { try f.engine.decrypt(ciphertextBlob: dataKey.ciphertextBlob, caller: f.caller) }
        var viaOther = f.caller
        viaOther.viaService = "s3"
        #expect(throws: KMSError.accessDenied) { try f.engine.decrypt(ciphertextBlob: dataKey.ciphertextBlob, caller: viaOther) }
        #expect(throws: KMSError.accessDenied) { try f.engine.disableKey(keyID: key.keyId, caller: f.caller) }
        #expect(throws: KMSError.accessDenied) { try f.engine.scheduleKeyDeletion(keyID: key.keyId, caller: f.caller) }
        #expect(throws: KMSError.accessDenied) { try f.engine.tagResource(keyID: key.keyId, tags: [Tag(tagKey: "a", tagValue: "b")], caller: f.caller) }
        // ReEncrypt is two permissions: kms:ReEncryptFrom on the source, kms:ReEncryptTo on the destination.
        let own = try f.createKey().keyId
        let ownBlob = try f.engine.encrypt(keyID: own, plaintext: secret("moved"), caller: f.caller).ciphertextBlob
        let intoManaged = try f.engine.reEncrypt(ciphertextBlob: ownBlob, destinationKeyID: "alias/aws/kmsfs", caller: viaKMSFS).ciphertextBlob
        #expect(try f.engine.reEncrypt(ciphertextBlob: intoManaged, destinationKeyID: own, caller: viaKMSFS).keyId.hasSuffix(own))
        do {
            _ = try f.engine.reEncrypt(ciphertextBlob: ownBlob, destinationKeyID: "alias/aws/kmsfs", caller: f.caller)
            Issue.record("re-encrypted into an AWS managed key without its service")
        } catch let error as KMSError {
            #expect(error.code == .accessDenied && error.message.contains("kms:ReEncryptTo"))
        }
        do {
            _ = try f.engine.reEncrypt(ciphertextBlob: intoManaged, destinationKeyID: own, caller: f.caller)
            Issue.record("re-encrypted out of an AWS managed key without its service")
        } catch let error as KMSError {
            #expect(error.code == .accessDenied && error.message.contains("kms:ReEncryptFrom"))
        }
        #expect(throws: KMSError(.notAuthorized, "")) { try f.engine.deleteAlias(aliasName: "alias/aws/kmsfs", caller: f.caller) }
        #expect(throws: KMSError(.notAuthorized, "")) { try f.engine.createAlias(aliasName: "alias/aws/kmsfs2", targetKeyID: key.keyId, caller: f.caller) }
        try f.reopen()
        #expect(try f.engine.serviceManagedKey(service: "kmsfs", caller: f.caller).keyId == key.keyId)
    }
}
