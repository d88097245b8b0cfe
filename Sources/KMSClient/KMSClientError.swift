import KMSVocabulary
#if canImport(Glibc)
import Glibc
#endif

/// Why a key operation failed, in the classes the filesystem acts on.
public struct KMSClientError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The caller may not use the key (AccessDenied, bad credentials or signature).
        case accessDenied
        /// The key exists but is disabled, pending deletion, pending import, ... (`state` says which).
        case keyUnusable(state: String)
        /// The key does not exist (or is not visible to the caller).
        case notFound
        /// The wrapped key does not open: wrong context, damaged blob, or another key.
        case invalidCiphertext
        /// The service could not be reached, or kept failing, after the retries.
        case unreachable
        /// The request itself was refused as malformed (a bug on our side).
        case invalidRequest
    }

    public let kind: Kind
    /// The AWS error code when the service sent one (`DisabledException`, ...).
    public let code: String?
    public let message: String

    public init(_ kind: Kind, code: String? = nil, message: String) {
        self.kind = kind
        self.code = code
        self.message = message
    }

    /// The errno the FUSE frontend answers with: EACCES when the key may not (or cannot) be used,
    /// EIO when the service is gone or the wrapped key is bad.
    public var errno: Int32 {
        switch kind {
        case .accessDenied, .keyUnusable: return EACCES
        case .notFound: return EACCES
        case .invalidCiphertext, .unreachable, .invalidRequest: return EIO
        }
    }

    public var description: String { "\(code ?? "\(kind)"): \(message)" }

    /// The class of an AWS error code, as any AWS-KMS-compatible service sends it.
    public init(awsCode: String, message: String) {
        let kind: Kind
        switch AWSErrorCode(type: awsCode) {
        case .accessDenied, .unrecognizedClient, .invalidSignature, .incompleteSignature, .missingAuthenticationToken, .expiredToken:
            kind = .accessDenied
        case .disabled: kind = .keyUnusable(state: "Disabled")
        case .invalidState, .keyUnavailable:
            kind = .keyUnusable(state: Self.state(in: message) ?? "not usable")
        case .notFound: kind = .notFound
        case .invalidCiphertext, .incorrectKey: kind = .invalidCiphertext
        case .internalError, .dependencyTimeout, .serviceUnavailable, .throttling:
            kind = .unreachable
        default: kind = .invalidRequest
        }
        self.init(kind, code: AWSErrorCode(type: awsCode).rawValue, message: message)
    }

    /// Whether the service asked the client to slow down (worth another attempt after a delay).
    public var isThrottling: Bool {
        guard let code else { return false }
        return [AWSErrorCode.throttling, .throttled, .requestLimitExceeded, .tooManyRequests].contains(AWSErrorCode(rawValue: code))
    }

    /// AWS names the state in KMSInvalidStateException messages ("... is pending deletion.").
    private static func state(in message: String) -> String? {
        let lower = message.lowercased()
        if lower.contains("pending deletion") || lower.contains("pendingdeletion") { return "PendingDeletion" }
        if lower.contains("pending import") || lower.contains("pendingimport") { return "PendingImport" }
        if lower.contains("disabled") { return "Disabled" }
        return nil
    }
}
