import KMSClient
import KMSEngine
import KMSFSCrypto

/// The key service in-process: the engine on a store beside the volume, nothing to run. It lives
/// with the volume, not the client, so that the client speaks to remote services without
/// linking the engine.
public struct EmbeddedKMSClient: KMSClient {
    public let engine: KMSEngine
    /// Who the filesystem acts as: the volume's account, region and principal, via service `kmsfs`.
    public let caller: Caller

    public init(engine: KMSEngine, caller: Caller) {
        self.engine = engine
        self.caller = caller
    }

    public func generateDataKey(keyID: String, context: EncryptionContext) throws(KMSClientError) -> DataKey {
        try call {
            let response = try engine.generateDataKey(keyID: keyID, keySpec: .aes256, encryptionContext: context, caller: caller)
            return DataKey(plaintext: response.plaintext!, ciphertextBlob: response.ciphertextBlob, keyARN: response.keyId)
        }
    }

    public func decrypt(ciphertextBlob: [UInt8], context: EncryptionContext, keyID: String?) throws(KMSClientError) -> SecretBytes {
        try call { try engine.decrypt(ciphertextBlob: ciphertextBlob, encryptionContext: context, keyID: keyID, caller: caller).plaintext }
    }

    public func reEncrypt(ciphertextBlob: [UInt8], sourceContext: EncryptionContext, destinationKeyID: String,
                          destinationContext: EncryptionContext) throws(KMSClientError) -> [UInt8] {
        try call {
            try engine.reEncrypt(ciphertextBlob: ciphertextBlob, sourceEncryptionContext: sourceContext,
                                 destinationKeyID: destinationKeyID, destinationEncryptionContext: destinationContext,
                                 caller: caller).ciphertextBlob
        }
    }

    public func describeKey(keyID: String) throws(KMSClientError) -> KeyDescription {
        try call {
            let metadata = try engine.describeKey(keyID: keyID, caller: caller).keyMetadata
            return KeyDescription(keyARN: metadata.arn, keyState: metadata.keyState.rawValue, keyManager: metadata.keyManager.rawValue)
        }
    }

    public func encrypt(keyID: String, plaintext: SecretBytes, context: EncryptionContext) throws(KMSClientError) -> [UInt8] {
        try call { try engine.encrypt(keyID: keyID, plaintext: plaintext, encryptionContext: context, caller: caller).ciphertextBlob }
    }

    private func call<R>(_ body: () throws -> R) throws(KMSClientError) -> R {
        do {
            return try body()
        } catch let error as KMSError {
            throw KMSClientError(error)
        } catch {
            throw KMSClientError(.unreachable, message: "the embedded key service failed: \(error)")
        }
    }
}

extension KMSClientError {
    init(_ error: KMSError) {
        self.init(awsCode: error.code.rawValue, message: error.message)
    }
}
