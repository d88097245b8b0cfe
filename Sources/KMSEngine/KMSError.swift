/// An error of the key service, named as AWS KMS names it.
///
/// `code` is the AWS error type (`NotFoundException`, `DisabledException`, ...) that the wire
/// layer sends as `__type`; `message` is the human text. Errors compare equal on `code` alone, so
/// tests can write `#expect(throws: KMSError.notFound)`.
public struct KMSError: Error, Sendable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let notFound = Code(rawValue: "NotFoundException")
        public static let disabled = Code(rawValue: "DisabledException")
        public static let invalidState = Code(rawValue: "KMSInvalidStateException")
        public static let invalidCiphertext = Code(rawValue: "InvalidCiphertextException")
        public static let incorrectKey = Code(rawValue: "IncorrectKeyException")
        public static let invalidKeyUsage = Code(rawValue: "InvalidKeyUsageException")
        public static let validation = Code(rawValue: "ValidationException")
        public static let alreadyExists = Code(rawValue: "AlreadyExistsException")
        public static let invalidAliasName = Code(rawValue: "InvalidAliasNameException")
        public static let invalidArn = Code(rawValue: "InvalidArnException")
        public static let invalidMarker = Code(rawValue: "InvalidMarkerException")
        public static let limitExceeded = Code(rawValue: "LimitExceededException")
        public static let tag = Code(rawValue: "TagException")
        public static let unsupportedOperation = Code(rawValue: "UnsupportedOperationException")
        public static let accessDenied = Code(rawValue: "AccessDeniedException")
        public static let malformedPolicyDocument = Code(rawValue: "MalformedPolicyDocumentException")
        public static let internalError = Code(rawValue: "KMSInternalException")
        /// A reserved alias name (`alias/aws/...`), as AWS answers it.
        public static let notAuthorized = Code(rawValue: "NotAuthorizedException")
        public static let invalidGrantToken = Code(rawValue: "InvalidGrantTokenException")
        public static let invalidGrantID = Code(rawValue: "InvalidGrantIdException")
        /// The call would have succeeded (DryRun).
        public static let dryRun = Code(rawValue: "DryRunOperationException")
        // IAM and STS, as their query APIs name them.
        public static let noSuchEntity = Code(rawValue: "NoSuchEntity")
        public static let entityAlreadyExists = Code(rawValue: "EntityAlreadyExists")
        public static let deleteConflict = Code(rawValue: "DeleteConflict")
        public static let malformedIdentityPolicy = Code(rawValue: "MalformedPolicyDocument")
        public static let iamLimitExceeded = Code(rawValue: "LimitExceeded")
        public static let iamValidation = Code(rawValue: "ValidationError")
        public static let expiredToken = Code(rawValue: "ExpiredTokenException")
    }

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
}
