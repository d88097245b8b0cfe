/// The errors of the crypto layer.
///
/// Misuse (a key or nonce of the wrong length) is a programming error and traps instead; what is
/// thrown here is what a correct program can meet at run time.
public enum CryptoError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The tag did not verify: the ciphertext, nonce, tag or additional data were changed, or the
    /// key is not the one that sealed them. No plaintext is released.
    case authenticationFailure
    /// OpenSSL reported a failure that is not an authentication failure.
    case openSSL(operation: String, reason: String)
    /// The kernel refused a protection of key memory (core dumps, locking).
    case system(String)

    public var description: String {
        switch self {
        case .authenticationFailure:
            return "authentication failed"
        case let .openSSL(operation, reason):
            return "OpenSSL \(operation) failed: \(reason)"
        case let .system(reason):
            return reason
        }
    }
}
