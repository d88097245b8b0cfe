/// An error of the key service, named as AWS KMS names it.
///
/// `code` is the AWS error type (`NotFoundException`, `DisabledException`, ...) that the wire
/// layer sends as `__type`; `message` is the human text. Errors compare equal on `code` alone, so
/// tests can write `#expect(throws: KMSError.notFound)`.
public struct KMSError: Error, Sendable, CustomStringConvertible {
    /// AWS's error names, shared with the wire and the client (``AWSErrorCode``).
    public typealias Code = AWSErrorCode

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }

    /// AWS's wording for a value outside a member's constraint.
    static func constraint(_ value: Any, member: String, _ constraint: String) -> KMSError {
        KMSError(.validation, "1 validation error detected: Value '\(value)' at '\(member)' failed to satisfy constraint: \(constraint)")
    }
}

extension KMSError: Equatable {
    public static func == (lhs: KMSError, rhs: KMSError) -> Bool { lhs.code == rhs.code }
}

extension KMSError.Code {
    /// Matches any error of this code, for `catch` patterns.
    public static func ~= (code: KMSError.Code, error: any Error) -> Bool { (error as? KMSError)?.code == code }
}

/// One value per code, for comparisons (`#expect(throws: KMSError.disabled)`); equality is by code.
extension KMSError {
    public static let notFound = KMSError(.notFound, "")
    public static let disabled = KMSError(.disabled, "")
    public static let invalidState = KMSError(.invalidState, "")
    public static let invalidCiphertext = KMSError(.invalidCiphertext, "")
    public static let incorrectKey = KMSError(.incorrectKey, "")
    public static let validation = KMSError(.validation, "")
    public static let alreadyExists = KMSError(.alreadyExists, "")
    public static let invalidAliasName = KMSError(.invalidAliasName, "")
    public static let invalidArn = KMSError(.invalidArn, "")
    public static let invalidMarker = KMSError(.invalidMarker, "")
    public static let limitExceeded = KMSError(.limitExceeded, "")
    public static let tag = KMSError(.tag, "")
    public static let unsupportedOperation = KMSError(.unsupportedOperation, "")
    public static let accessDenied = KMSError(.accessDenied, "")
    public static let malformedPolicyDocument = KMSError(.malformedPolicyDocument, "")
    public static let dryRun = KMSError(.dryRun, "")
    public static let invalidGrantID = KMSError(.invalidGrantID, "")
    public static let noSuchEntity = KMSError(.noSuchEntity, "")
    public static let internalError = KMSError(.internalError, "")
}
