import KMSVocabulary
import KMSFSCrypto

/// The filesystem's only door to keys: the key operations kmsfs needs, whatever serves them.
///
/// Blocking by design: the callers are FUSE worker threads (libfuse's own pthreads, outside Swift
/// concurrency), which must answer the kernel with the result anyway; a blocking call keeps the
/// thread's stack as the request's state and never parks work on the cooperative pool. The embedded
/// client answers in microseconds; remote clients block only the calling worker while other
/// workers go on, and the key pool and data-key cache keep most file operations off the network.
public protocol KMSClient: Sendable {
    /// A new data key (AES-256) under `keyID`, bound to `context`.
    func generateDataKey(keyID: String, context: EncryptionContext) throws(KMSClientError) -> DataKey
    /// The plaintext of a wrapped data key.
    func decrypt(ciphertextBlob: [UInt8], context: EncryptionContext, keyID: String?) throws(KMSClientError) -> SecretBytes
    /// Re-wraps a data key under `destinationKeyID` without the plaintext leaving the service.
    func reEncrypt(ciphertextBlob: [UInt8], sourceContext: EncryptionContext, destinationKeyID: String,
                   destinationContext: EncryptionContext) throws(KMSClientError) -> [UInt8]
    /// The key's ARN and state.
    func describeKey(keyID: String) throws(KMSClientError) -> KeyDescription
    /// Encrypts a small secret (up to 4096 bytes) directly under `keyID`.
    func encrypt(keyID: String, plaintext: SecretBytes, context: EncryptionContext) throws(KMSClientError) -> [UInt8]
    /// The client the key pool refills through: the same service, marked so that the service's
    /// audit trail can tell keys made ahead of need from keys a file asked for (a remote client
    /// sends `User-Agent: kmsfs (key-pool)`).
    func forKeyPool() -> any KMSClient
}

extension KMSClient {
    public func forKeyPool() -> any KMSClient { self }
}

/// A data key in both forms.
public struct DataKey: Sendable {
    public var plaintext: SecretBytes
    public var ciphertextBlob: [UInt8]
    /// The ARN of the key that wraps it.
    public var keyARN: String

    public init(plaintext: SecretBytes, ciphertextBlob: [UInt8], keyARN: String) {
        self.plaintext = plaintext
        self.ciphertextBlob = ciphertextBlob
        self.keyARN = keyARN
    }
}

public struct KeyDescription: Sendable, Equatable {
    public var keyARN: String
    public var keyState: String
    public var keyManager: String

    public init(keyARN: String, keyState: String, keyManager: String) {
        self.keyARN = keyARN
        self.keyState = keyState
        self.keyManager = keyManager
    }
}
