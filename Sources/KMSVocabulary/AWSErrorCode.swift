/// An error's name as AWS's APIs send it (`__type` in the JSON protocol, `Code` in the query
/// protocol): the vocabulary the engine throws, the wire and SigV4 answer with, and the client
/// classifies — declared once, so the two ends of a connection cannot spell one differently.
public struct AWSErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    // AWS KMS.
    public static let notFound = AWSErrorCode(rawValue: "NotFoundException")
    public static let disabled = AWSErrorCode(rawValue: "DisabledException")
    public static let invalidState = AWSErrorCode(rawValue: "KMSInvalidStateException")
    public static let invalidCiphertext = AWSErrorCode(rawValue: "InvalidCiphertextException")
    public static let incorrectKey = AWSErrorCode(rawValue: "IncorrectKeyException")
    public static let invalidKeyUsage = AWSErrorCode(rawValue: "InvalidKeyUsageException")
    public static let kmsInvalidSignature = AWSErrorCode(rawValue: "KMSInvalidSignatureException")
    public static let kmsInvalidMac = AWSErrorCode(rawValue: "KMSInvalidMacException")
    public static let invalidImportToken = AWSErrorCode(rawValue: "InvalidImportTokenException")
    public static let expiredImportToken = AWSErrorCode(rawValue: "ExpiredImportTokenException")
    public static let incorrectKeyMaterial = AWSErrorCode(rawValue: "IncorrectKeyMaterialException")
    public static let customKeyStoreNotFound = AWSErrorCode(rawValue: "CustomKeyStoreNotFoundException")
    // Custom key stores (CloudHSM-style on a PKCS#11 token, and external key stores).
    public static let customKeyStoreInvalidState = AWSErrorCode(rawValue: "CustomKeyStoreInvalidStateException")
    public static let customKeyStoreNameInUse = AWSErrorCode(rawValue: "CustomKeyStoreNameInUseException")
    public static let customKeyStoreHasCMKs = AWSErrorCode(rawValue: "CustomKeyStoreHasCMKsException")
    public static let cloudHsmClusterInUse = AWSErrorCode(rawValue: "CloudHsmClusterInUseException")
    public static let cloudHsmClusterNotFound = AWSErrorCode(rawValue: "CloudHsmClusterNotFoundException")
    public static let cloudHsmClusterNotRelated = AWSErrorCode(rawValue: "CloudHsmClusterNotRelatedException")
    public static let xksKeyNotFound = AWSErrorCode(rawValue: "XksKeyNotFoundException")
    public static let xksKeyInvalidConfiguration = AWSErrorCode(rawValue: "XksKeyInvalidConfigurationException")
    public static let xksKeyAlreadyInUse = AWSErrorCode(rawValue: "XksKeyAlreadyInUseException")
    public static let xksProxyUriEndpointInUse = AWSErrorCode(rawValue: "XksProxyUriEndpointInUseException")
    public static let xksProxyUriInUse = AWSErrorCode(rawValue: "XksProxyUriInUseException")
    public static let xksProxyIncorrectAuthenticationCredential = AWSErrorCode(rawValue: "XksProxyIncorrectAuthenticationCredentialException")
    public static let xksProxyInvalidResponse = AWSErrorCode(rawValue: "XksProxyInvalidResponseException")
    public static let xksProxyInvalidConfiguration = AWSErrorCode(rawValue: "XksProxyInvalidConfigurationException")
    public static let validation = AWSErrorCode(rawValue: "ValidationException")
    public static let alreadyExists = AWSErrorCode(rawValue: "AlreadyExistsException")
    public static let invalidAliasName = AWSErrorCode(rawValue: "InvalidAliasNameException")
    public static let invalidArn = AWSErrorCode(rawValue: "InvalidArnException")
    public static let invalidMarker = AWSErrorCode(rawValue: "InvalidMarkerException")
    public static let limitExceeded = AWSErrorCode(rawValue: "LimitExceededException")
    public static let tag = AWSErrorCode(rawValue: "TagException")
    public static let unsupportedOperation = AWSErrorCode(rawValue: "UnsupportedOperationException")
    public static let accessDenied = AWSErrorCode(rawValue: "AccessDeniedException")
    public static let malformedPolicyDocument = AWSErrorCode(rawValue: "MalformedPolicyDocumentException")
    public static let internalError = AWSErrorCode(rawValue: "KMSInternalException")
    /// A reserved alias name (`alias/aws/...`), as AWS answers it.
    public static let notAuthorized = AWSErrorCode(rawValue: "NotAuthorizedException")
    public static let invalidGrantToken = AWSErrorCode(rawValue: "InvalidGrantTokenException")
    public static let invalidGrantID = AWSErrorCode(rawValue: "InvalidGrantIdException")
    /// The call would have succeeded (DryRun).
    public static let dryRun = AWSErrorCode(rawValue: "DryRunOperationException")
    // IAM and STS, as their query APIs name them.
    public static let noSuchEntity = AWSErrorCode(rawValue: "NoSuchEntity")
    public static let entityAlreadyExists = AWSErrorCode(rawValue: "EntityAlreadyExists")
    public static let deleteConflict = AWSErrorCode(rawValue: "DeleteConflict")
    public static let malformedIdentityPolicy = AWSErrorCode(rawValue: "MalformedPolicyDocument")
    public static let iamLimitExceeded = AWSErrorCode(rawValue: "LimitExceeded")
    public static let iamValidation = AWSErrorCode(rawValue: "ValidationError")
    public static let expiredToken = AWSErrorCode(rawValue: "ExpiredTokenException")

    // The protocol and authentication layers.
    public static let serialization = AWSErrorCode(rawValue: "SerializationException")
    public static let unknownOperation = AWSErrorCode(rawValue: "UnknownOperationException")
    public static let requestEntityTooLarge = AWSErrorCode(rawValue: "RequestEntityTooLargeException")
    public static let incompleteSignature = AWSErrorCode(rawValue: "IncompleteSignatureException")
    public static let invalidSignature = AWSErrorCode(rawValue: "InvalidSignatureException")
    public static let unrecognizedClient = AWSErrorCode(rawValue: "UnrecognizedClientException")
    public static let missingAuthenticationToken = AWSErrorCode(rawValue: "MissingAuthenticationTokenException")
    // Sent by AWS KMS (or a proxy in front of a service) and classified by the client.
    public static let keyUnavailable = AWSErrorCode(rawValue: "KeyUnavailableException")
    public static let dependencyTimeout = AWSErrorCode(rawValue: "DependencyTimeoutException")
    public static let serviceUnavailable = AWSErrorCode(rawValue: "ServiceUnavailableException")
    public static let throttling = AWSErrorCode(rawValue: "ThrottlingException")
    public static let throttled = AWSErrorCode(rawValue: "ThrottledException")
    public static let requestLimitExceeded = AWSErrorCode(rawValue: "RequestLimitExceeded")
    public static let tooManyRequests = AWSErrorCode(rawValue: "TooManyRequestsException")
    // The query protocol's names for the same conditions (IAM, STS).
    public static let queryAccessDenied = AWSErrorCode(rawValue: "AccessDenied")
    public static let invalidClientTokenID = AWSErrorCode(rawValue: "InvalidClientTokenId")
    public static let serviceFailure = AWSErrorCode(rawValue: "ServiceFailure")
    public static let queryExpiredToken = AWSErrorCode(rawValue: "ExpiredToken")
    public static let queryMissingAuthenticationToken = AWSErrorCode(rawValue: "MissingAuthenticationToken")
    public static let invalidAction = AWSErrorCode(rawValue: "InvalidAction")
    public static let malformedQueryString = AWSErrorCode(rawValue: "MalformedQueryString")

    /// The code of a `__type` value, which may carry a namespace (`com.amazonaws.kms#NotFoundException`).
    public init(type: String) {
        self.init(rawValue: String(type.split(separator: "#").last ?? Substring(type)))
    }
}
