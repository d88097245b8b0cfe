import Foundation
import KMSClient
import KMSEngine
import KMSFSCrypto
import KMSJSON
import KMSTLS

/// This deployment's peers, as kmsd's configuration names them, and the client side of the
/// peer protocol: one POST per message over mutually authenticated TLS — this deployment's
/// certificate presented, each peer's checked against the peers' CA and the peer's name.
public final class PeerDirectory: ReplicaPeers {
    public struct Peer: Sendable, Equatable {
        /// The name in the peer's certificate (a DNS subject alternative name).
        public var name: String
        /// Where it listens for peers: `https://HOST:PORT`, or several separated by commas (the
        /// instances of a deployment with several: tried in order, the next on a connection
        /// failure or a 5xx).
        public var endpoint: String
        /// The Regions it serves.
        public var regions: [String]
        public init(name: String, endpoint: String, regions: [String]) {
            self.name = name
            self.endpoint = endpoint
            self.regions = regions
        }
    }

    public let peers: [Peer]
    /// The Regions this deployment serves: the only ones peers make replicas in here.
    public let regions: Set<String>
    private let byRegion: [String: String]
    /// Each peer's endpoints, in the order they are tried, with their connections.
    private let pools: [String: [(endpoint: Endpoint, pool: ConnectionPool)]]
    /// One message's deadline (connect, TLS, answer).
    static let timeout: TimeInterval = 10

    /// - Throws: ``PeerFailure`` for a configuration that cannot work: an endpoint that is not
    ///   https, a Region two peers claim, a peer named twice.
    public init(regions: [String], peers: [Peer], identity: TLSClientSession.Identity, caBundle: String) throws(PeerFailure) {
        guard !regions.isEmpty else { throw PeerFailure("this deployment serves no Region") }
        var byRegion: [String: String] = [:], pools: [String: [(endpoint: Endpoint, pool: ConnectionPool)]] = [:]
        for peer in peers {
            guard pools[peer.name] == nil else { throw PeerFailure("peer \(peer.name) is named twice") }
            guard let endpoints = try? Endpoint.list(parsing: peer.endpoint),
                  endpoints.allSatisfy({ if case .tcp(_, _, tls: true) = $0 { return true }; return false }) else {
                throw PeerFailure("peer \(peer.name)'s endpoint \(peer.endpoint) is not https://HOST:PORT (or several, separated by commas)")
            }
            guard !peer.regions.isEmpty else { throw PeerFailure("peer \(peer.name) serves no Region") }
            for region in peer.regions {
                if regions.contains(region) { throw PeerFailure("Region \(region) is this deployment's and peer \(peer.name)'s") }
                if let other = byRegion[region] { throw PeerFailure("Region \(region) is claimed by peers \(other) and \(peer.name)") }
                byRegion[region] = peer.name
            }
            pools[peer.name] = endpoints.map {
                ($0, ConnectionPool(endpoint: $0, timeout: Self.timeout, caBundle: caBundle, identity: identity, serverName: peer.name, maximumIdle: 2))
            }
        }
        self.peers = peers
        self.regions = Set(regions)
        self.byRegion = byRegion
        self.pools = pools
    }

    /// The peer whose certificate carries one of `names`, if any.
    public func peer(named names: [String]) -> String? {
        peers.first { names.contains($0.name) }?.name
    }

    public func peer(serving region: String) -> String? { byRegion[region] }

    public func serves(_ region: String) -> Bool { regions.contains(region) }

    /// Sends `message` to the first of the peer's endpoints that answers; a refusal (4xx) is the
    /// peer's answer, a connection failure or a 5xx moves to the next endpoint.
    public func deliver(_ message: [UInt8], to peer: String) throws(PeerFailure) {
        guard let endpoints = pools[peer] else { throw PeerFailure("no peer is named \(peer)") }
        var failure = PeerFailure("peer \(peer) has no endpoint")
        for (endpoint, pool) in endpoints {
            var request = Array("POST \(PeerProtocol.path) HTTP/1.1\r\nHost: \(endpoint.hostHeader)\r\nContent-Type: application/json\r\nContent-Length: \(message.count)\r\n\r\n".utf8)
            request += message
            defer { request.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
            let response: HTTPConnection.Response
            do {
                response = try pool.exchange(request, deadline: Self.timeout)
            } catch {
                failure = PeerFailure("peer \(peer) at \(endpoint) is unreachable: \(error)")
                continue
            }
            guard response.status != 200 else { return }
            let answer = try? JSONParser.parse(response.body)
            var code: String?, text = "HTTP \(response.status)"
            if case let .object(members)? = answer {
                if case let .string(name)? = members.last(where: { $0.0 == "__type" })?.1 { code = name }
                if case let .string(message)? = members.last(where: { $0.0 == "message" })?.1 { text = message }
            }
            failure = PeerFailure("peer \(peer) at \(endpoint) refused the message: \(code ?? "") \(text)", code: code)
            guard response.status >= 500 else { throw failure }
        }
        throw failure
    }
}

/// The peer protocol's one route, shared by client and server.
public enum PeerProtocol {
    public static let path = "/kmsd-peer/v1/messages"
}
