import KMSEngine

/// An error as the AWS JSON 1.1 protocol sends it: `{"__type": ..., "message": ...}` and a status.
public struct WireError: Error, Equatable, Sendable {
    public let type: String
    public let message: String
    /// 400 for the caller's mistakes, 500 for the service's own faults.
    public let status: Int

    public init(type: String, message: String, status: Int = 400) {
        self.type = type
        self.message = message
        self.status = status
    }

    /// Malformed JSON, or a member of the wrong JSON type.
    static func serialization(_ message: String) -> WireError { WireError(type: "SerializationException", message: message) }

    /// A member that breaks a constraint, in AWS's wording.
    static func validation(_ message: String) -> WireError { WireError(type: "ValidationException", message: message) }

    init(_ error: KMSError) {
        let status: Int
        switch error.code {
        case .internalError: status = 500
        case .dryRun: status = 412
        default: status = 400
        }
        self.init(type: error.code.rawValue, message: error.message, status: status)
    }
}
