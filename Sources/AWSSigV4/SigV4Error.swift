import KMSVocabulary

/// Why a request's signature was not accepted, with the AWS error name and wording.
public struct SigV4Error: Error, Equatable, Sendable, CustomStringConvertible {
    /// `UnrecognizedClientException`, `InvalidSignatureException`, `IncompleteSignatureException`,
    /// `MissingAuthenticationTokenException`.
    public let code: AWSErrorCode
    public let message: String

    public var description: String { "\(code): \(message)" }

    static func incomplete(_ message: String) -> SigV4Error { SigV4Error(code: .incompleteSignature, message: message) }
    static func invalid(_ message: String) -> SigV4Error { SigV4Error(code: .invalidSignature, message: message) }
    static let unrecognized = SigV4Error(code: .unrecognizedClient, message: "The security token included in the request is invalid.")
    static let missing = SigV4Error(code: .missingAuthenticationToken, message: "Missing Authentication Token")
    static let mismatch = invalid(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
}
