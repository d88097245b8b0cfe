import Foundation
import KMSClient
import KMSFSVolume
import KMSEngine
import KMSFSCrypto
import Testing

/// A real engine on a real SQLite store behind the embedded client.
final class EmbeddedFixture {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kmsclient-\(UUID().uuidString)")
    let engine: KMSEngine
    let client: EmbeddedKMSClient
    let caller = Caller(account: "111122223333", region: "eu-west-1", requestID: "client-test", viaService: "kmsfs")

    init() throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        engine = try KMSEngine.open(path: directory.appendingPathComponent("keys.sqlite").path, rootKey: .generate(), schedulerInterval: nil)
        client = EmbeddedKMSClient(engine: engine, caller: caller)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    func key() throws -> String { try engine.createKey(CreateKeyRequest(), caller: caller).keyMetadata.keyId }
}

@Suite struct EmbeddedClientTests {
    @Test func roundTrips() throws {
        let f = try EmbeddedFixture()
        let key = try f.key()
        let context = ["kmsfs:volume": "v1", "kmsfs:file": "00ff"]
        let dataKey = try f.client.generateDataKey(keyID: key, context: context)
        #expect(dataKey.plaintext.count == 32 && dataKey.keyARN.hasSuffix(key))
        #expect(try f.client.decrypt(ciphertextBlob: dataKey.ciphertextBlob, context: context, keyID: nil) == dataKey.plaintext)
        let other = try f.key()
        let rewrapped = try f.client.reEncrypt(ciphertextBlob: dataKey.ciphertextBlob, sourceContext: context,
                                               destinationKeyID: other, destinationContext: context)
        #expect(try f.client.decrypt(ciphertextBlob: rewrapped, context: context, keyID: other) == dataKey.plaintext)
        #expect(try f.client.describeKey(keyID: key).keyState == "Enabled")
        let small = try f.client.encrypt(keyID: key, plaintext: SecretBytes(copying: [1, 2, 3]), context: [:])
        #expect(try f.client.decrypt(ciphertextBlob: small, context: [:], keyID: key) == SecretBytes(copying: [1, 2, 3]))
        // The service-managed default key works through the client (it calls via service kmsfs).
        let managed = try f.engine.serviceManagedKey(service: "kmsfs", caller: f.caller)
        #expect(try f.client.generateDataKey(keyID: "alias/aws/kmsfs", context: context).keyARN == managed.arn)
    }

    /// Each error class, and the errno the filesystem will answer with.
    @Test func errorClassesAndErrno() throws {
        let f = try EmbeddedFixture()
        let key = try f.key()
        let blob = try f.client.generateDataKey(keyID: key, context: ["f": "1"]).ciphertextBlob

        let wrongContext = try #require(throws: KMSClientError.self) { try f.client.decrypt(ciphertextBlob: blob, context: ["f": "2"], keyID: nil) }
        #expect(wrongContext.kind == .invalidCiphertext && wrongContext.errno == EIO)

        let missing = try #require(throws: KMSClientError.self) { try f.client.describeKey(keyID: "alias/none") }
        #expect(missing.kind == .notFound && missing.code == "NotFoundException")

        try f.engine.disableKey(keyID: key, caller: f.caller)
        let disabled = try #require(throws: KMSClientError.self) { try f.client.decrypt(ciphertextBlob: blob, context: ["f": "1"], keyID: nil) }
        #expect(disabled.kind == .keyUnusable(state: "Disabled") && disabled.errno == EACCES)
        try f.engine.enableKey(keyID: key, caller: f.caller)
        _ = try f.engine.scheduleKeyDeletion(keyID: key, caller: f.caller)
        let pending = try #require(throws: KMSClientError.self) { try f.client.generateDataKey(keyID: key, context: [:]) }
        #expect(pending.kind == .keyUnusable(state: "PendingDeletion") && pending.errno == EACCES)

        // Another service's managed key: access denied.
        _ = try f.engine.serviceManagedKey(service: "s3", caller: f.caller)
        let denied = try #require(throws: KMSClientError.self) { try f.client.generateDataKey(keyID: "alias/aws/s3", context: [:]) }
        #expect(denied.kind == .accessDenied && denied.errno == EACCES)
    }

    @Test func awsCodesMapToKinds() {
        #expect(KMSClientError(awsCode: "ThrottlingException", message: "").kind == .unreachable)
        #expect(KMSClientError(awsCode: "UnrecognizedClientException", message: "").kind == .accessDenied)
        #expect(KMSClientError(awsCode: "KMSInvalidStateException", message: "arn:... is pending import.").kind == .keyUnusable(state: "PendingImport"))
        #expect(KMSClientError(awsCode: "IncorrectKeyException", message: "").errno == EIO)
        #expect(KMSClientError(awsCode: "ValidationException", message: "").kind == .invalidRequest)
    }
}
