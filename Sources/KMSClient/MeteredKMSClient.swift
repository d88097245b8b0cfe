import CoreMetrics
import Dispatch
import KMSFSCrypto
import KMSVocabulary

/// A KMS client that records every call: `kmsfs_kms_requests_total{operation, outcome}` and
/// `kmsfs_kms_request_duration_seconds{operation}`, through swift-metrics (the mount serves
/// them to Prometheus; without a metrics backend they cost nothing).
public struct MeteredKMSClient: KMSClient {
    let base: any KMSClient
    /// "file" for calls a file operation waits on, "pool" for the key pool's refills.
    let caller: String

    public init(_ base: any KMSClient, caller: String = "file") {
        self.base = base
        self.caller = caller
    }

    private func measure<T>(_ operation: String, _ body: () throws(KMSClientError) -> T) throws(KMSClientError) -> T {
        let started = DispatchTime.now().uptimeNanoseconds
        let outcome: String
        defer {
            Counter(label: "kmsfs_kms_requests_total", dimensions: [("operation", operation), ("outcome", outcome), ("caller", caller)]).increment()
            Timer(label: "kmsfs_kms_request_duration_seconds", dimensions: [("operation", operation), ("caller", caller)])
                .recordNanoseconds(Int64(truncatingIfNeeded: DispatchTime.now().uptimeNanoseconds &- started))
        }
        do {
            let result = try body()
            outcome = "ok"
            return result
        } catch {
            outcome = error.kind.metricName
            throw error
        }
    }

    public func generateDataKey(keyID: String, context: EncryptionContext) throws(KMSClientError) -> DataKey {
        try measure("GenerateDataKey") { () throws(KMSClientError) in try base.generateDataKey(keyID: keyID, context: context) }
    }

    public func decrypt(ciphertextBlob: [UInt8], context: EncryptionContext, keyID: String?) throws(KMSClientError) -> SecretBytes {
        try measure("Decrypt") { () throws(KMSClientError) in try base.decrypt(ciphertextBlob: ciphertextBlob, context: context, keyID: keyID) }
    }

    public func reEncrypt(ciphertextBlob: [UInt8], sourceContext: EncryptionContext, destinationKeyID: String,
                          destinationContext: EncryptionContext) throws(KMSClientError) -> [UInt8] {
        try measure("ReEncrypt") { () throws(KMSClientError) in
            try base.reEncrypt(ciphertextBlob: ciphertextBlob, sourceContext: sourceContext, destinationKeyID: destinationKeyID,
                               destinationContext: destinationContext)
        }
    }

    public func describeKey(keyID: String) throws(KMSClientError) -> KeyDescription {
        try measure("DescribeKey") { () throws(KMSClientError) in try base.describeKey(keyID: keyID) }
    }

    public func encrypt(keyID: String, plaintext: SecretBytes, context: EncryptionContext) throws(KMSClientError) -> [UInt8] {
        try measure("Encrypt") { () throws(KMSClientError) in try base.encrypt(keyID: keyID, plaintext: plaintext, context: context) }
    }

    public func forKeyPool() -> any KMSClient { MeteredKMSClient(base.forKeyPool(), caller: "pool") }
}

extension KMSClientError.Kind {
    /// The outcome label of a failed call.
    var metricName: String {
        switch self {
        case .accessDenied: return "access_denied"
        case .keyUnusable: return "key_unusable"
        case .notFound: return "not_found"
        case .invalidCiphertext: return "invalid_ciphertext"
        case .unreachable: return "unreachable"
        case .invalidRequest: return "invalid_request"
        }
    }
}
