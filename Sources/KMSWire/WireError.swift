import KMSEngine
import KMSVocabulary

/// An error as the AWS JSON 1.1 protocol sends it: `{"__type": ..., "message": ...}` and a status.
public struct WireError: Error, Equatable, Sendable {
    public let type: AWSErrorCode
    public let message: String
    /// 400 for the caller's mistakes, 500 for the service's own faults.
    public let status: Int

    public init(type: AWSErrorCode, message: String, status: Int = 400) {
        self.type = type
        self.message = message
        self.status = status
    }

    /// Malformed JSON, or a member of the wrong JSON type.
    static func serialization(_ message: String) -> WireError { WireError(type: .serialization, message: message) }

    /// A member that breaks a constraint, in AWS's wording.
    static func validation(_ message: String) -> WireError { WireError(type: .validation, message: message) }

    init(_ error: KMSError) {
        let status: Int
        switch error.code {
        case .internalError: status = 500
        case .dryRun: status = 412
        default: status = 400
        }
        self.init(type: error.code, message: error.message, status: status)
    }
}
