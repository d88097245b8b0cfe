import ArgumentParser
import Foundation
import KMSEngine
import KMSPeers
import KMSServer
import KMSTLS
import Yams

/// Replication of multi-Region keys with peer deployments (docs/KMS.md): the `peering:` section
/// of the configuration file, or the same settings in their own file (`--peering`).
///
/// ```yaml
/// listen: tls://0.0.0.0:9443           # where peers reach this deployment
/// certificate: /etc/kmsd/peer.crt      # this deployment's certificate (server and client), its name a DNS SAN
/// key: /etc/kmsd/peer.key
/// ca: /etc/kmsd/peer-ca.pem            # the CA of every peer's certificate
/// regions: [us-east-1]                 # the Regions this deployment serves
/// interval: 1                          # seconds between rounds that retry what peers lack
/// peers:
///   - name: eu.kms.example             # a DNS name in its certificate
///     endpoint: https://10.0.2.1:9443
///     regions: [eu-west-1, eu-central-1]
/// ```
struct PeeringSettings: Decodable {
    struct PeerEntry: Decodable {
        var name: String
        var endpoint: String
        var regions: [String]
    }

    var listen: String
    var regions: [String]
    var certificate: String
    var key: String
    var ca: String
    var interval: Double?
    var peers: [PeerEntry]

    static func load(_ path: String) throws -> PeeringSettings {
        guard let text = FileManager.default.contents(atPath: path).map({ String(decoding: $0, as: UTF8.self) }) else {
            throw ValidationError("cannot read the peering file \(path)")
        }
        do { return try YAMLDecoder().decode(PeeringSettings.self, from: text) } catch { throw ValidationError("\(path): \(error)") }
    }

    /// Connects `engine` to its peers and listens for them.
    func start(engine: KMSEngine) throws -> PeerServer {
        guard case let (.tls(host, port, _, _), nil) = try ServeCommand.parse(listen, certificate: certificate, key: key) else {
            throw ValidationError("peering: listen is tls://HOST:PORT (peers authenticate each other with certificates): \(listen)")
        }
        let interval = interval ?? 1
        guard interval >= 0.05, interval <= 3600 else {
            throw ValidationError("peering: interval is 0.05 to 3600 seconds")
        }
        let directory: PeerDirectory
        do {
            directory = try PeerDirectory(regions: regions, peers: peers.map { .init(name: $0.name, endpoint: $0.endpoint, regions: $0.regions) },
                                          identity: TLSClientSession.Identity(certificate: certificate, key: key), caBundle: ca)
        } catch { throw ValidationError("peering: \(error)") }
        let server = try PeerServer(service: PeerService(engine: engine, directory: directory), host: host, port: port,
                                    certificate: certificate, key: key, caBundle: ca)
        engine.onPeerProblem { peer, problem in
            print(problem.map { "kmsd: WARNING: replication to peer \(peer) failing (retried with backoff, from \(interval) s to 5 min): \($0)" }
                  ?? "kmsd: replication to peer \(peer) going through again")
            fflush(nil)
        }
        engine.connectPeers(directory, every: .milliseconds(Int(interval * 1000)))
        print("kmsd: this deployment serves \(regions.joined(separator: ", ")) to its peers")
        for peer in peers { print("kmsd: peer \(peer.name) at \(peer.endpoint) serves \(peer.regions.joined(separator: ", "))") }
        print("kmsd: listening for peers on \(server.boundAddress)")
        return server
    }
}
