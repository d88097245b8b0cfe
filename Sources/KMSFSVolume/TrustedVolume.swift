import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// This machine's record of a volume on a remote key service, kept outside the backing
/// directory (`~/.config/kmsfs/volumes/VOLUME-ID.json`, or under `$KMSFS_CONFIG_DIR`): where its
/// keys are (endpoint, region, profile) and which KMS key seals its configuration.
///
/// A mount takes the key service from its command line, then from this record, then from the
/// environment and `~/.aws` as the AWS SDKs do — never from `kmsfs.conf`, which whoever writes
/// the backing directory can change to a relay that records every data key. `kmsfs init`
/// writes the record, and so does a mount given the settings explicitly; the first mount of a
/// copied volume on another machine trusts the seal key it finds and records it (logged).
public struct TrustedVolume: Codable, Sendable, Equatable {
    public var endpoint: String?
    public var region: String?
    public var profile: String?
    public var sealKeyARN: String

    public init(endpoint: String?, region: String?, profile: String?, sealKeyARN: String) {
        self.endpoint = endpoint
        self.region = region
        self.profile = profile
        self.sealKeyARN = sealKeyARN
    }

    static var directory: String {
        let environment = ProcessInfo.processInfo.environment
        if let explicit = environment["KMSFS_CONFIG_DIR"], !explicit.isEmpty { return explicit + "/volumes" }
        if let xdg = environment["XDG_CONFIG_HOME"], xdg.hasPrefix("/") { return xdg + "/kmsfs/volumes" }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? getpwuid(getuid()).map { String(cString: $0.pointee.pw_dir) } ?? "/root"
        return home + "/.config/kmsfs/volumes"
    }

    static func path(volumeID: String) -> String { directory + "/\(volumeID).json" }

    /// The record of `volumeID`, if this machine has one.
    public static func load(volumeID: String) -> TrustedVolume? {
        guard volumeID.allSatisfy({ $0.isHexDigit || $0 == "-" }), let data = FileManager.default.contents(atPath: path(volumeID: volumeID)) else {
            return nil
        }
        return try? JSONDecoder().decode(TrustedVolume.self, from: data)
    }

    public func save(volumeID: String) throws {
        try FileManager.default.createDirectory(atPath: Self.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(Array(try encoder.encode(self)), to: Self.path(volumeID: volumeID), mode: 0o600)
    }
}
