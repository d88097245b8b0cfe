import Foundation
import KMSEngine
import KMSFSCrypto
import KMSFSFormat
#if canImport(Glibc)
import Glibc
#endif

/// What `kmsfs info` shows about one encrypted file, the analog of `aws s3api head-object` for
/// an SSE-KMS object. Read from the header, the key attribute and the size: no key service call.
public struct FileInfo: Sendable, Equatable {
    public var keyARN: String
    public var encryptionContext: EncryptionContext
    public var formatVersion: Int
    public var chunkSize: Int
    public var plaintextSize: Int64
    public var fileID: String
    /// The bucket key the file's key is derived from (hex), on volumes with bucket keys.
    public var bucketID: String?

    /// Describes the backing file at `path` of the volume in `cipherDirectory`.
    public static func read(backingPath path: String, cipherDirectory: String, volume: VolumeConfiguration) throws -> FileInfo {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StorageError(errno: errno, operation: "open \(path)") }
        defer { close(fd) }
        let storage = FileDescriptorStorage(fd: fd)
        let stored = try StoredFileKey.read(fd: fd)
        let header = stored.header
        let geometry = ChunkGeometry(plainChunkSize: header.chunkSize)
        var bucketID: [UInt8]?
        if case let .bucket(bucket) = stored.attribute { bucketID = bucket.bucketID }
        return FileInfo(
            keyARN: try stored.keyARN(cipherDirectory: cipherDirectory),
            // The context the key service sees: the file's, or its bucket key's.
            encryptionContext: bucketID.map { BucketKeys.context(volumeID: volume.volumeID, bucketID: $0) }
                ?? FileKeys.context(volumeID: volume.volumeID, fileID: header.fileID.bytes),
            formatVersion: Int(header.version), chunkSize: header.chunkSize,
            plaintextSize: try geometry.plainSize(forCipherSize: storage.size()), fileID: header.fileID.description,
            bucketID: bucketID.map { hex($0) })
    }

    /// The lines `kmsfs info` prints, also the value of the mount's `user.kmsfs.info` attribute.
    public var lines: [String] {
        [
            "KMS key: \(keyARN)",
            "encryption context: " + encryptionContext.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "),
            "format version: \(formatVersion)",
            "chunk size: \(chunkSize)",
            "plaintext size: \(plaintextSize)",
            "file id: \(fileID)",
        ] + (bucketID.map { ["bucket key: \($0) (its key is derived from it)"] } ?? [])
    }

    /// The lines describing a directory: the key its new files get, and where that comes from.
    public static func directoryLines(keyID: String, source: DirectoryKey.Source) -> [String] {
        switch source {
        case .directory(let path) where path == ".":
            return ["default KMS key for new files: \(keyID) (set on this directory, \(DirectoryKey.attributeName))"]
        case .directory(let path):
            return ["default KMS key for new files: \(keyID) (inherited from \(path))"]
        case .volumeDefault:
            return ["default KMS key for new files: \(keyID) (the volume's default)"]
        }
    }

    /// The volume a backing file belongs to: the nearest directory above it with a `kmsfs.conf`.
    public static func volume(containing path: String) throws -> (directory: String, configuration: VolumeConfiguration) {
        var directory = ((path as NSString).standardizingPath as NSString).deletingLastPathComponent
        while true {
            if FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent(VolumeConfiguration.fileName)) {
                return (directory, try VolumeConfiguration.load(cipherDirectory: directory))
            }
            guard directory != "/" && !directory.isEmpty else { throw VolumeError.notAVolume(path) }
            directory = (directory as NSString).deletingLastPathComponent
        }
    }
}
