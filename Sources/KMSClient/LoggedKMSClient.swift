import KMSVocabulary
import KMSFSCrypto
import Logging

/// Any client, with the failures an operator must see logged: a key that is disabled or pending
/// deletion (named with its state: the alarm the issue asks for), access denied, and a service
/// that stays unreachable. Logs name keys and error codes, never key material or plaintext.
public struct LoggedKMSClient: KMSClient {
    public let client: any KMSClient
    public let logger: Logger

    public init(_ client: any KMSClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func forKeyPool() -> any KMSClient { LoggedKMSClient(client.forKeyPool(), logger: logger) }

    public func generateDataKey(keyID: String, context: EncryptionContext) throws(KMSClientError) -> DataKey {
        try logged("GenerateDataKey", keyID) { () throws(KMSClientError) in try client.generateDataKey(keyID: keyID, context: context) }
    }

    public func decrypt(ciphertextBlob: [UInt8], context: EncryptionContext, keyID: String?) throws(KMSClientError) -> SecretBytes {
        try logged("Decrypt", keyID ?? "(from the ciphertext)") { () throws(KMSClientError) in
            try client.decrypt(ciphertextBlob: ciphertextBlob, context: context, keyID: keyID)
        }
    }

    public func reEncrypt(ciphertextBlob: [UInt8], sourceContext: EncryptionContext, destinationKeyID: String,
                          destinationContext: EncryptionContext) throws(KMSClientError) -> [UInt8] {
        try logged("ReEncrypt", destinationKeyID) { () throws(KMSClientError) in
            try client.reEncrypt(ciphertextBlob: ciphertextBlob, sourceContext: sourceContext,
                                 destinationKeyID: destinationKeyID, destinationContext: destinationContext)
        }
    }

    public func describeKey(keyID: String) throws(KMSClientError) -> KeyDescription {
        try logged("DescribeKey", keyID) { () throws(KMSClientError) in try client.describeKey(keyID: keyID) }
    }

    public func encrypt(keyID: String, plaintext: SecretBytes, context: EncryptionContext) throws(KMSClientError) -> [UInt8] {
        try logged("Encrypt", keyID) { () throws(KMSClientError) in try client.encrypt(keyID: keyID, plaintext: plaintext, context: context) }
    }

    private func logged<R>(_ operation: String, _ keyID: String, _ body: () throws(KMSClientError) -> R) throws(KMSClientError) -> R {
        do {
            return try body()
        } catch {
            var metadata: Logger.Metadata = ["kms.operation": "\(operation)", "kms.key_id": "\(keyID)", "kms.error": "\(error.code ?? "\(error.kind)")"]
            switch error.kind {
            case let .keyUnusable(state):
                metadata["kms.key_state"] = "\(state)"
                logger.warning("KMS key \(keyID) is \(state): \(operation) refused", metadata: metadata)
            case .accessDenied:
                logger.warning("KMS access denied for key \(keyID): \(error.message)", metadata: metadata)
            case .unreachable:
                logger.error("KMS unreachable: \(error.message)", metadata: metadata)
            case .notFound, .invalidCiphertext, .invalidRequest:
                logger.notice("KMS \(operation) failed: \(error.message)", metadata: metadata)
            }
            throw error
        }
    }
}
