import Foundation

/// A volume's settings, stored as `kmsfs.conf` (JSON) at the top of the backing directory.
///
/// It holds no secret: the key store and root key of the embedded service live outside the
/// backing directory (``KeyServiceSettings/Embedded``), so that a copy of the ciphertext alone
/// carries no key.
public struct VolumeConfiguration: Codable, Sendable, Equatable {
    public static let fileName = "kmsfs.conf"
    public static let currentFormatVersion = 1

    /// Random; names the volume in every file's encryption context.
    public var volumeID: String
    public var formatVersion: Int
    /// Plaintext bytes per chunk for new files.
    public var chunkSize: Int
    /// The KMS key new files use unless a directory names another (ID, ARN or alias).
    public var defaultKeyID: String
    public var keyService: KeyServiceSettings

    public init(volumeID: String, formatVersion: Int = currentFormatVersion, chunkSize: Int, defaultKeyID: String,
                keyService: KeyServiceSettings) {
        self.volumeID = volumeID
        self.formatVersion = formatVersion
        self.chunkSize = chunkSize
        self.defaultKeyID = defaultKeyID
        self.keyService = keyService
    }

    public static func load(cipherDirectory: String) throws -> VolumeConfiguration {
        let path = (cipherDirectory as NSString).appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw VolumeError.notAVolume(cipherDirectory)
        }
        let configuration = try JSONDecoder().decode(VolumeConfiguration.self, from: data)
        guard configuration.formatVersion == currentFormatVersion else {
            throw VolumeError.unsupportedFormat(configuration.formatVersion)
        }
        return configuration
    }

    func write(cipherDirectory: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let path = (cipherDirectory as NSString).appendingPathComponent(Self.fileName)
        guard FileManager.default.createFile(atPath: path, contents: try encoder.encode(self), attributes: [.posixPermissions: 0o644]) else {
            throw VolumeError.io("cannot write \(path)")
        }
    }
}

/// Which key service the volume's keys come from.
public enum KeyServiceSettings: Sendable, Equatable, CustomStringConvertible {
    /// The engine in-process, on a store of its own.
    case embedded(Embedded)
    /// An AWS-KMS-compatible endpoint (kmsd, AWS KMS, ...); credentials resolve as the SDKs do.
    case remote(Remote)

    public struct Embedded: Codable, Sendable, Equatable {
        public var storePath: String
        public var rootKeyFile: String
        public var account: String
        public var region: String
    }

    public struct Remote: Codable, Sendable, Equatable {
        public var endpoint: String?
        public var region: String?
        public var profile: String?

        public init(endpoint: String?, region: String?, profile: String?) {
            self.endpoint = endpoint
            self.region = region
            self.profile = profile
        }
    }
}

/// Stored as `{"embedded": {...}}` or `{"remote": {...}}`.
extension KeyServiceSettings: Codable {
    /// For logs and messages: where keys come from (paths and endpoints, never credentials).
    public var description: String {
        switch self {
        case .embedded(let embedded): return "embedded (store \(embedded.storePath))"
        case .remote(let remote): return "remote (\(remote.endpoint ?? "AWS KMS"), region \(remote.region ?? "from the environment"))"
        }
    }

    private enum Kind: String, CodingKey { case embedded, remote }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Kind.self)
        if let embedded = try container.decodeIfPresent(Embedded.self, forKey: .embedded) {
            self = .embedded(embedded)
        } else if let remote = try container.decodeIfPresent(Remote.self, forKey: .remote) {
            self = .remote(remote)
        } else {
            throw DecodingError.dataCorrupted(.init(codingPath: container.codingPath, debugDescription: "keyService needs embedded or remote"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Kind.self)
        switch self {
        case let .embedded(embedded): try container.encode(embedded, forKey: .embedded)
        case let .remote(remote): try container.encode(remote, forKey: .remote)
        }
    }
}

public enum VolumeError: Error, Equatable, CustomStringConvertible {
    case notAVolume(String)
    case unsupportedFormat(Int)
    case alreadyInitialized(String)
    case notEmpty(String)
    case noUserXattrs(String, reason: String)
    case io(String)

    public var description: String {
        switch self {
        case let .notAVolume(path): return "\(path) is not a kmsfs volume (no \(VolumeConfiguration.fileName))"
        case let .unsupportedFormat(version): return "volume format \(version) is not supported by this kmsfs"
        case let .alreadyInitialized(path): return "\(path) is already a kmsfs volume"
        case let .notEmpty(path): return "\(path) is not empty: kmsfs init needs an empty directory"
        case let .noUserXattrs(path, reason):
            return "\(path) does not support user extended attributes (\(reason)); kmsfs keeps each file's wrapped key in one, so it refuses this filesystem"
        case let .io(message): return message
        }
    }
}
