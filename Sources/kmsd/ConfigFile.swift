import ArgumentParser
import Foundation
import Yams

/// kmsd's configuration file (YAML). Every setting is also a flag; a flag wins over the file.
///
/// ```yaml
/// store: /var/lib/kmsd/keys.sqlite
/// rootKey:                  # one of file, fd, credential
///   credential: root.key
/// nextRootKey:              # the key a rotation goes to (kmsd admin rotate-root-key); as rootKey
///   credential: next-root.key
/// listen:
///   - tcp://127.0.0.1:8080
///   - tls://0.0.0.0:8443
///   - unix:///run/kmsd/kmsd.sock?mode=0660
/// tls:
///   certificate: /etc/kmsd/tls.crt
///   key: /etc/kmsd/tls.key
/// maxBodyBytes: 1048576
/// idleTimeout: 30
/// requestTimeout: 10           # a request must arrive whole within this many seconds
/// maxConnections: 1000
/// hostNames: [kms.example.internal]   # serve only requests signed for these hosts
/// seed: /etc/kmsd/seed.yaml    # applied at every start (see SeedFile)
/// auditAnchor: /var/lib/kmsd-anchor/audit-anchor   # the audit head, outside the store
/// adminSocket: /var/lib/kmsd/admin.sock              # where `kmsd admin` reaches a running kmsd
/// peering: {...}               # replication of multi-Region keys with peers (PeeringSettings)
/// # Listeners may carry an endpoint policy: tcp://0.0.0.0:8443?policy=/etc/kmsd/endpoint.json
/// ```
struct ConfigFile: Decodable {
    struct RootKeySource: Decodable {
        var file: String?
        var fd: Int32?
        var credential: String?
    }

    struct TLS: Decodable {
        var certificate: String
        var key: String
    }

    var store: String?
    var rootKey: RootKeySource?
    var nextRootKey: RootKeySource?
    var listen: [String]?
    var tls: TLS?
    var maxBodyBytes: Int?
    var idleTimeout: Int64?
    var requestTimeout: Int64?
    var maxConnections: Int?
    var hostNames: [String]?
    var seed: String?
    var auditAnchor: String?
    var adminSocket: String?
    /// Custom key stores: the PKCS#11 module of AWS_CLOUDHSM stores, the CAs of XKS proxies.
    var pkcs11Module: String?
    var xksCABundle: String?
    var peering: PeeringSettings?

    static let knownKeys: Set<String> = ["pkcs11Module", "xksCABundle", "store", "rootKey", "nextRootKey", "listen", "tls", "maxBodyBytes", "idleTimeout", "requestTimeout",
                                         "maxConnections", "hostNames", "seed", "auditAnchor", "adminSocket", "peering"]

    /// Reads `path`; an unknown setting is an error (a typo must not be silently ignored).
    static func load(_ path: String) throws -> ConfigFile {
        guard let text = FileManager.default.contents(atPath: path).map({ String(decoding: $0, as: UTF8.self) }) else {
            throw ValidationError("cannot read the configuration file \(path)")
        }
        do {
            if case let .mapping(mapping)? = try Yams.compose(yaml: text) {
                let unknown = mapping.keys.compactMap(\.string).filter { !knownKeys.contains($0) }
                guard unknown.isEmpty else {
                    throw ValidationError("\(path): unknown setting(s) \(unknown.sorted().joined(separator: ", "))")
                }
            }
            return try YAMLDecoder().decode(ConfigFile.self, from: text)
        } catch let error as ValidationError {
            throw error
        } catch {
            throw ValidationError("\(path): \(error)")
        }
    }
}
