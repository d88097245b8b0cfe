import KMSAuthorization

/// Where and how kmsd listens.
public struct ServerConfiguration: Sendable {
    public enum Listener: Sendable, Equatable, CustomStringConvertible {
        /// HTTP over TCP. Port 0 picks a free port (see ``KMSServer/boundAddresses``).
        case tcp(host: String, port: Int)
        /// HTTPS: TLS 1.2 or later with the PEM certificate chain and private key in these files.
        case tls(host: String, port: Int, certificate: String, key: String)
        /// HTTP over a Unix domain socket, created with `mode` (the private-endpoint analog:
        /// only who may open the file may call).
        case unix(path: String, mode: UInt16)

        public var description: String {
            switch self {
            case let .tcp(host, port): return "http://\(host):\(port)"
            case let .tls(host, port, _, _): return "https://\(host):\(port)"
            case let .unix(path, mode): return "unix://\(path) (mode \(String(mode, radix: 8)))"
            }
        }
    }

    public var listeners: [Listener]
    /// Endpoint policies by the index of their listener in ``listeners`` (two listeners may be
    /// alike, `tcp://127.0.0.1:0` twice): a request through a listener with one must be allowed
    /// by it too (and is refused by any Deny in it), whatever the key and identity policies say.
    public var endpointPolicies: [Int: Policy] = [:]
    /// Bodies larger than this are refused with 413 before they are read in full.
    public var maximumBodyBytes: Int = 1 << 20
    /// A connection that sends nothing for this long is closed (slow or stuck clients).
    public var idleTimeoutSeconds: Int64 = 30
    /// A request must arrive whole (head and body) within this long of its first byte.
    public var requestTimeoutSeconds: Int64 = 10
    /// Connections open at once, over every listener; more are closed when accepted.
    public var maximumConnections: Int = 1000
    /// SigV4 clock skew allowed either way.
    public var allowedSkewSeconds: Double = 15 * 60
    /// The host names requests must be signed for (`--host-name`; the Host header, port aside,
    /// compared without case); empty takes any. A request signed for another service's host —
    /// with credentials that also work there — is then refused, not served.
    public var hostNames: [String] = []
    /// Told of every request signed with an access key the store does not know (dev mode logs
    /// them: a test pointed at the wrong credentials should say so). Never given the secret.
    public var onUnknownAccessKey: (@Sendable (String) -> Void)?
    /// Dev mode only: `POST /moto-api/reset` (unsigned, as moto's test harness sends it) removes
    /// every key, so a test suite written against moto's server can run against kmsd.
    public var serveTestReset = false
    /// Event-loop threads (defaults to the number of cores).
    public var threads: Int = System.coreCount

    public init(listeners: [Listener]) { self.listeners = listeners }
}

import NIOCore
import NIOPosix
