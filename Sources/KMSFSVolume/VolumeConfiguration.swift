import Foundation
import KMSFSFormat

/// A volume's settings, stored as `kmsfs.conf` (JSON) at the top of the backing directory.
///
/// The backing directory is untrusted, so this file is too: what in it decides which key
/// protects new files (the default key, the keys directories may name, the hole policy, the
/// chunk size) is authenticated by ``seal``, a MAC under a key only the volume's key service
/// can unwrap (``VolumeSeal``), checked at every mount. Where keys come from — the endpoint,
/// region and profile of a remote service, the embedded store's location — never comes from
/// this file: the mount takes it from its own command line, the environment or the machine's
/// record of the volume (``TrustedVolume``). It holds no secret.
public struct VolumeConfiguration: Codable, Sendable, Equatable {
    public static let fileName = "kmsfs.conf"
    /// 3: files in format 2 (XAES-256-GCM chunks); 2: sealed configuration, format-1 files.
    public static let currentFormatVersion = 3
    /// 4: as 3, with bucket keys (``bucketKeys``; key attributes of format 2): a kmsfs that
    /// knows only 3 refuses such a volume by its version rather than by a seal it cannot check.
    public static let bucketKeysFormatVersion = 4
    /// 5: encrypted names (``nameKey``; docs/FORMAT.md), with or without bucket keys: a kmsfs
    /// that knows only 3 and 4 refuses the volume rather than showing its names encrypted and
    /// adding plaintext ones beside them.
    public static let encryptedNamesFormatVersion = 5
    /// Names at the top of the backing directory that are kmsfs's own, never shown in the mount.
    public static let reservedNames: Set<String> = [fileName, BucketRecord.directoryName]

    /// Random; names the volume in every file's encryption context.
    public var volumeID: String
    public var formatVersion: Int
    /// Plaintext bytes per chunk for new files.
    public var chunkSize: Int
    /// The KMS key new files use unless a directory names another (an ARN).
    public var defaultKeyID: String
    /// Keys (IDs, ARNs or aliases, as given) that directories may name for their new files,
    /// besides the default key.
    public var allowedKeyIDs: [String]
    /// What gaps in growing files are made of.
    public var holes: HolePolicy
    public var keyService: KeyServiceSettings
    /// Set on volumes whose files' keys come from bucket keys (format version 4, or 5).
    public var bucketKeys: BucketKeyPolicy?
    /// The name key, wrapped by the key service (base64 of its ciphertext blob), on volumes with
    /// encrypted names (format version 5).
    public var nameKey: String?
    /// The MAC over all of the above; nil only while a configuration is being made.
    public var seal: VolumeSeal?

    public init(volumeID: String, formatVersion: Int = currentFormatVersion, chunkSize: Int, defaultKeyID: String,
                allowedKeyIDs: [String] = [], holes: HolePolicy = .sealed, keyService: KeyServiceSettings) {
        self.volumeID = volumeID
        self.formatVersion = formatVersion
        self.chunkSize = chunkSize
        self.defaultKeyID = defaultKeyID
        self.allowedKeyIDs = allowedKeyIDs
        self.holes = holes
        self.keyService = keyService
    }

    /// Reads `kmsfs.conf`. Nothing in it is trusted until ``VolumeSeal/verify(_:client:expectedKeyARN:)``.
    /// - Throws: ``VolumeError`` for a missing, malformed or unsupported configuration.
    public static func load(cipherDirectory: String) throws -> VolumeConfiguration {
        let path = (cipherDirectory as NSString).appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw VolumeError.notAVolume(cipherDirectory)
        }
        struct Version: Decodable { let formatVersion: Int }
        guard let version = try? JSONDecoder().decode(Version.self, from: data) else { throw VolumeError.malformedConfiguration(path) }
        guard [currentFormatVersion, bucketKeysFormatVersion, encryptedNamesFormatVersion].contains(version.formatVersion) else {
            throw VolumeError.unsupportedFormat(version.formatVersion)
        }
        // The volume ID names files outside the backing directory (``TrustedVolume``): a UUID only.
        guard let configuration = try? JSONDecoder().decode(VolumeConfiguration.self, from: data),
              FileHeader.allowedChunkSizes.contains(configuration.chunkSize), configuration.seal != nil,
              UUID(uuidString: configuration.volumeID) != nil, configuration.volumeID == configuration.volumeID.lowercased(),
              configuration.formatVersion == encryptedNamesFormatVersion
                  || (configuration.formatVersion == bucketKeysFormatVersion) == (configuration.bucketKeys != nil),
              (configuration.formatVersion == encryptedNamesFormatVersion) == (configuration.nameKey != nil),
              configuration.bucketKeys?.isValid ?? true
        else { throw VolumeError.malformedConfiguration(path) }
        return configuration
    }

    /// The bytes the seal's MAC covers: every setting, in a fixed order, each as
    /// `u32 length ‖ name ‖ u32 length ‖ value` (a format of our own: no JSON encoder's choices
    /// can change it, and no value, whatever bytes it holds, makes two configurations alike).
    var authenticatedBytes: [UInt8] {
        var fields: [(String, String)] = [("formatVersion", "\(formatVersion)"), ("volumeID", volumeID), ("chunkSize", "\(chunkSize)"),
                                          ("defaultKeyID", defaultKeyID), ("holes", holes.rawValue)]
        fields += allowedKeyIDs.map { ("allowedKeyID", $0) }
        // Only when set: the bytes of a configuration without bucket keys are what they always were.
        if let bucketKeys { fields += [("bucketKeyMaxAge", "\(bucketKeys.maxAge)"), ("bucketKeyMaxFiles", "\(bucketKeys.maxFiles)")] }
        if let nameKey { fields += [("nameKey", nameKey)] }
        switch keyService {
        case let .embedded(embedded): fields += [("keyService", "embedded"), ("account", embedded.account), ("region", embedded.region)]
        case .remote: fields += [("keyService", "remote")]
        }
        fields.append(("sealKeyARN", seal?.keyARN ?? ""))
        var bytes = Array("kmsfs volume configuration".utf8)
        for (name, value) in fields {
            for part in [Array(name.utf8), Array(value.utf8)] {
                bytes += withUnsafeBytes(of: UInt32(part.count).bigEndian, Array.init) + part
            }
        }
        return bytes
    }

    func write(cipherDirectory: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let path = (cipherDirectory as NSString).appendingPathComponent(Self.fileName)
        try AtomicFile.write(Array(try encoder.encode(self)), to: path, mode: 0o644)
    }
}

/// Which key service the volume's keys come from.
public enum KeyServiceSettings: Sendable, Equatable, CustomStringConvertible {
    /// The engine in-process, on a store of its own.
    case embedded(Embedded)
    /// An AWS-KMS-compatible endpoint (kmsd, AWS KMS, ...); credentials resolve as the SDKs do.
    case remote(Remote)

    /// The embedded service's account and Region in its store. Where the store is comes from
    /// the mount (``EmbeddedStore``), never from here.
    public struct Embedded: Codable, Sendable, Equatable {
        public var account: String
        public var region: String
    }

    /// A remote service. These are what `kmsfs init` was given, kept as a hint for messages
    /// only: a mount never goes where the backing directory says (``TrustedVolume``).
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
        case .embedded(let embedded): return "embedded (account \(embedded.account))"
        case .remote: return "remote"
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
    case malformedConfiguration(String)
    /// The configuration's seal does not verify: changed behind kmsfs's back.
    case tamperedConfiguration(String)
    /// Another mount (or fsck) holds the volume.
    case inUse(String)
    /// The key service could not be asked, or refused (the reason in the service's words).
    case keyService(String)
    case alreadyInitialized(String)
    case notEmpty(String)
    case noUserXattrs(String, reason: String)
    case io(String)
    /// The embedded store's root key cannot be had: no passphrase, a wrong one, a missing key file.
    case rootKey(String)

    public var description: String {
        switch self {
        case let .notAVolume(path): return "\(path) is not a kmsfs volume (no \(VolumeConfiguration.fileName))"
        case let .unsupportedFormat(version):
            switch version {
            case 1:
                return "volume format 1 keeps its configuration unauthenticated (the backing directory could choose where keys go); this kmsfs mounts format 3 only: make a new volume with kmsfs init and copy the files over"
            case 2:
                return "volume format 2 seals chunks with 96-bit random nonces (about 2^32 seals per file key); this kmsfs mounts format 3 only (XAES-256-GCM): make a new volume with kmsfs init and copy the files over with the kmsfs that made it"
            default:
                return "volume format \(version) is not supported by this kmsfs"
            }
        case let .malformedConfiguration(path): return "\(path) is not a valid kmsfs configuration"
        case let .tamperedConfiguration(reason): return "the volume's configuration was changed outside kmsfs: \(reason); refusing to mount"
        case let .inUse(holder): return "the volume is \(holder)"
        case let .keyService(reason): return reason
        case let .alreadyInitialized(path): return "\(path) is already a kmsfs volume"
        case let .notEmpty(path): return "\(path) is not empty: kmsfs init needs an empty directory"
        case let .noUserXattrs(path, reason):
            return "\(path) does not support user extended attributes (\(reason)); kmsfs keeps each file's wrapped key in one, so it refuses this filesystem"
        case let .io(message): return message
        case let .rootKey(reason): return "root key: \(reason)"
        }
    }
}
