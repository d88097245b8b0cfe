import Foundation
import KMSFSCrypto
import KMSJSON

/// A message between deployments (the body of one peer request), and its JSON form.
///
/// The non-secret part travels as the store's own JSON of the records (``KeyRecord`` is
/// `Codable`), so a field added to a record needs no second codec; the material travels beside it
/// as blobs, decoded straight into ``SecretBytes``.
enum PeerMessage {
    /// What a multi-Region key's copies share, from the copy that speaks for them.
    case syncKey(SharedKeyState)
    /// The sender has deleted its copy of a key in `region`.
    case replicaDeleted(account: String, keyID: String, region: String)

    /// Largest message taken: a key's every version (an RSA-4096 pair is ~2.4 KiB stored) is far under it.
    static let maximumBytes = 1 << 20
    /// Most Regions one key's copies may be in (AWS has fewer Regions than this).
    static let maximumRegions = 64

    struct SharedKeyState {
        /// The sender's copy, its Region's own fields (policy, tags, description) left out.
        var record: KeyRecord
        /// The Region of every copy, the sender's and the primary's included.
        var regions: [String]
        /// Every version's material, by version.
        var material: [UInt32: SecretBytes]
        /// Replicas the receiver is asked to make, by Region.
        var replicas: [String: PeerReplicaRequest]
    }

    private struct Header: Codable {
        var record: KeyRecord
        var regions: [String]
        var replicas: [String: PeerReplicaRequest]
    }

    private struct Deleted: Codable {
        var account: String
        var keyID: String
        var region: String
    }

    struct Malformed: Error, CustomStringConvertible {
        let description: String
    }

    var serialized: [UInt8] {
        get throws {
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            switch self {
            case let .syncKey(shared):
                let header = try encoder.encode(Header(record: shared.record, regions: shared.regions, replicas: shared.replicas))
                let material: [JSONValue] = shared.material.sorted { $0.key < $1.key }.map { version, bytes in
                    .object([("Version", .int(Int(version))), ("Bytes", bytes.withUnsafeBytes { .blob(Array($0)) })])
                }
                return JSONValue.object([("Type", .string("SyncKey")), ("Header", .string(String(decoding: header, as: UTF8.self))),
                                         ("Material", .array(material))]).serialized
            case let .replicaDeleted(account, keyID, region):
                let header = try encoder.encode(Deleted(account: account, keyID: keyID, region: region))
                return JSONValue.object([("Type", .string("ReplicaDeleted")), ("Header", .string(String(decoding: header, as: UTF8.self)))]).serialized
            }
        }
    }

    init(syncKey shared: SharedKeyState) { self = .syncKey(shared) }

    init(replicaDeleted account: String, keyID: String, region: String) {
        self = .replicaDeleted(account: account, keyID: keyID, region: region)
    }

    init(parsing body: [UInt8]) throws(Malformed) {
        guard body.count <= Self.maximumBytes else { throw Malformed(description: "the message is over \(Self.maximumBytes) bytes") }
        guard case let .object(members)? = try? JSONParser.parse(body) else { throw Malformed(description: "the message is not a JSON object") }
        func member(_ name: String) -> JSONValue? { members.last { $0.0 == name }?.1 }
        guard case let .string(type)? = member("Type"), case let .string(headerText)? = member("Header") else {
            throw Malformed(description: "the message has no Type or Header")
        }
        let decoder = JSONDecoder()
        do {
            switch type {
            case "SyncKey":
                let header = try decoder.decode(Header.self, from: Data(headerText.utf8))
                guard case let .array(items)? = member("Material") else { throw Malformed(description: "a SyncKey message has no Material") }
                var material: [UInt32: SecretBytes] = [:]
                for item in items {
                    guard case let .object(pair) = item,
                          case let .number(versionText)? = pair.last(where: { $0.0 == "Version" })?.1, let version = UInt32(versionText),
                          case let .string(text)? = pair.last(where: { $0.0 == "Bytes" })?.1, let data = Data(base64Encoded: text),
                          material[version] == nil
                    else { throw Malformed(description: "a Material entry is not one Version and its Bytes") }
                    var bytes = [UInt8](data)
                    material[version] = SecretBytes(wiping: &bytes)
                }
                self = .syncKey(SharedKeyState(record: header.record, regions: header.regions, material: material, replicas: header.replicas))
            case "ReplicaDeleted":
                let header = try decoder.decode(Deleted.self, from: Data(headerText.utf8))
                self = .replicaDeleted(account: header.account, keyID: header.keyID, region: header.region)
            default:
                throw Malformed(description: "unknown message type \(type)")
            }
        } catch let error as Malformed {
            throw error
        } catch {
            throw Malformed(description: "the message's Header is not what its Type carries: \(error)")
        }
    }
}

extension KMSEngine {
    /// The largest peer message the engine takes: the listener reads no more than this.
    public static var maximumPeerMessageBytes: Int { PeerMessage.maximumBytes }
}
