import KMSClient

/// A key service failure in words an operator can act on (never an internal enum name).
public enum KeyServiceProblem {
    public static func describe(_ error: KMSClientError) -> String {
        let detail = error.code.map { "\($0): \(error.message)" } ?? error.message
        switch error.kind {
        case .unreachable: return "the key service cannot be reached (\(detail))"
        case .accessDenied: return "the key service refused these credentials (\(detail)); check the access key, secret, session token and region"
        case .notFound: return "the key service does not know the volume's key (\(detail)); is this the right endpoint, account and region?"
        case let .keyUnusable(state): return "the volume's key cannot be used: it is \(state) (\(detail))"
        case .invalidCiphertext: return "the key service cannot unwrap the volume's key (\(detail))"
        case .invalidRequest: return "the key service refused the request (\(detail))"
        }
    }
}
