import KMSAuthorization
import NIOCore

/// What a listener tells the decision point about the requests that come through it: whether
/// they came over TLS (`aws:SecureTransport`), from which address (`aws:SourceIp`), and the
/// listener's endpoint policy, which can only narrow what the other policies allow (AWS's VPC
/// endpoint policies: a private endpoint that serves only some principals, actions and keys).
struct Endpoint: Sendable {
    let secure: Bool
    let policy: Policy?

    struct Connection: Sendable {
        let sourceIP: String?
        let secure: Bool
        let policy: Policy?
    }

    func connection(remote: SocketAddress?) -> Connection {
        Connection(sourceIP: remote?.ipAddress, secure: secure, policy: policy)
    }
}
