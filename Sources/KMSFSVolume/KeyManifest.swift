import CLinux
import Foundation
import KMSClient
import KMSEngine
import KMSFSCrypto
import KMSFSFormat
#if canImport(Glibc)
import Glibc
#endif

/// `kmsfs manifest`: every file's key attribute (and every bucket record) of a volume, in one
/// authenticated file kept apart from the volume, so that a copy that dropped the extended
/// attributes (`rsync -a` without `-X`, plain `tar`, a cloud sync) can have them put back.
///
/// The list is MACed under a key the volume's key service makes and alone unwraps (as the
/// configuration's seal is): a manifest edited to hand a file another file's key, or made for
/// another volume, is refused whole. Restoring only adds what is missing: an attribute that is
/// there and differs is reported and left alone, never overwritten.
public struct KeyManifest: Codable, Sendable, Equatable {
    public static let formatName = "kmsfs-key-manifest-1"

    public struct File: Codable, Sendable, Equatable {
        /// Relative to the volume's root, for people: the plaintext path on a volume with
        /// encrypted names (names that are not UTF-8 are shown with replacement characters).
        public var path: String
        /// The same, as the bytes the backing directory holds (base64): what restore opens.
        public var rawPath: String
        public var fileID: String
        /// The attribute's bytes, base64.
        public var attribute: String
    }

    public struct Bucket: Codable, Sendable, Equatable {
        public var bucketID: String
        /// The record's bytes, base64.
        public var record: String
    }

    public var format: String
    public var volumeID: String
    /// The KMS key that wraps the MAC key, and the MAC key's blob (base64).
    public var keyARN: String
    public var wrappedKey: String
    public var files: [File]
    public var buckets: [Bucket]
    /// Directory IDs, on volumes with encrypted names (absent from manifests of volumes without).
    public var directories: [Directory]?
    /// HMAC-SHA-256 over ``authenticatedBytes``, hex.
    public var mac: String

    static func context(volumeID: String) -> EncryptionContext {
        ["kmsfs:volume": volumeID, "kmsfs:purpose": "key-manifest"]
    }

    /// Every field but the MAC, each length-prefixed (no two manifests alike).
    var authenticatedBytes: [UInt8] {
        var bytes = Array("kmsfs key manifest 1".utf8)
        func field(_ value: String) { bytes += withUnsafeBytes(of: UInt32(value.utf8.count).bigEndian, Array.init) + Array(value.utf8) }
        for value in [format, volumeID, keyARN, wrappedKey, String(files.count), String(buckets.count)] { field(value) }
        for file in files { field(file.path); field(file.rawPath); field(file.fileID); field(file.attribute) }
        for bucket in buckets { field(bucket.bucketID); field(bucket.record) }
        // Only when present: a manifest without directories authenticates as it always did.
        if let directories {
            field("directories"); field(String(directories.count))
            for directory in directories { field(directory.rawPath); field(directory.directoryID) }
        }
        return bytes
    }

    /// The manifest of the volume `volume` has open (the caller holds its lock).
    /// - Returns: the manifest and the files it could not read (path, reason): those have no
    ///   usable attribute to save.
    public static func export(_ volume: Volume) throws -> (manifest: KeyManifest, unreadable: [(String, String)]) {
        let cipherDirectory = volume.cipherDirectory
        var files: [File] = [], unreadable: [(String, String)] = []
        try VolumeFiles.forEachFile(in: cipherDirectory, names: volume.names, failed: { unreadable.append(($0, $1)) }) { entry in
            let path = entry.path
            let fd = entry.open()
            guard fd >= 0 else { return unreadable.append((path, String(cString: strerror(errno)))) }
            defer { close(fd) }
            do {
                let stored = try StoredFileKey.read(fd: fd)
                files.append(File(path: path, rawPath: Data(entry.rawPath).base64EncodedString(), fileID: hex(stored.header.fileID.bytes),
                                  attribute: Data(stored.attribute.encoded).base64EncodedString()))
            } catch {
                unreadable.append((path, "\(error)"))
            }
        }
        var buckets: [Bucket] = []
        for bucketID in try BucketKeys.bucketIDs(cipherDirectory: cipherDirectory) {
            let record = try BucketRecord.read(cipherDirectory: cipherDirectory, bucketID: bucketID)
            buckets.append(Bucket(bucketID: hex(bucketID), record: Data(record.encoded).base64EncodedString()))
        }
        let volumeID = volume.configuration.volumeID
        let macKey = try volume.keys.generateKey(keyID: volume.configuration.defaultKeyID, context: context(volumeID: volumeID))
        var manifest = KeyManifest(format: formatName, volumeID: volumeID, keyARN: macKey.keyARN,
                                   wrappedKey: Data(macKey.ciphertextBlob).base64EncodedString(), files: files, buckets: buckets,
                                   directories: volume.names == nil ? nil : try directoryIDs(cipherDirectory: cipherDirectory), mac: "")
        manifest.mac = hex(HMAC.sha256(key: macKey.plaintext, message: manifest.authenticatedBytes))
        return (manifest, unreadable)
    }

    /// What a restore did.
    public struct RestoreReport: Sendable {
        public var restored: [String] = []
        public var alreadyThere = 0
        /// Files whose attribute is there and differs from the manifest's: left as they are.
        public var conflicts: [String] = []
        /// Files the manifest lists that are not in the volume, or are other files now (another
        /// file ID in their header).
        public var missing: [String] = []
        public var bucketsRestored = 0
        public var bucketConflicts: [String] = []
        public var directoriesRestored = 0
        public var isClean: Bool { conflicts.isEmpty && missing.isEmpty && bucketConflicts.isEmpty }
    }

    /// Checks the MAC with the volume's key service, then puts back every missing attribute and
    /// bucket record.
    /// - Throws: ``VolumeError/tamperedConfiguration(_:)`` for a manifest that is not this
    ///   volume's or does not verify (nothing is changed then).
    public func restore(into volume: Volume) throws -> RestoreReport {
        try verify(volume)
        let cipherDirectory = volume.cipherDirectory
        var report = RestoreReport()
        for bucket in buckets {
            guard let bucketID = unhex(bucket.bucketID), bucketID.count == BucketFileKey.bucketIDByteCount,
                  let bytes = Data(base64Encoded: bucket.record) else { throw VolumeError.tamperedConfiguration("the manifest has a malformed bucket") }
            let wanted = try BucketRecord(decoding: Array(bytes))
            do {
                if try BucketRecord.read(cipherDirectory: cipherDirectory, bucketID: bucketID) == wanted { continue }
                report.bucketConflicts.append(bucket.bucketID)
            } catch FileKeyError.missingBucket {
                try wanted.write(cipherDirectory: cipherDirectory, bucketID: bucketID)
                report.bucketsRestored += 1
            }
        }
        for file in files {
            guard let bytes = Data(base64Encoded: file.attribute), let raw = Data(base64Encoded: file.rawPath),
                  let components = VolumeFiles.components(ofRawPath: Array(raw)) else {
                throw VolumeError.tamperedConfiguration("the manifest has a malformed entry")
            }
            let fd = VolumeFiles.open(components, in: cipherDirectory)
            guard fd >= 0 else {
                report.missing.append(file.path)
                continue
            }
            defer { close(fd) }
            guard let header = try? BackingFile.readHeader(FileDescriptorStorage(fd: fd)), hex(header.fileID.bytes) == file.fileID else {
                report.missing.append(file.path)
                continue
            }
            var existing = [UInt8](repeating: 0, count: 4096)
            let count = fgetxattr(fd, FileKeyAttribute.attributeName, &existing, existing.count)
            if count >= 0 {
                if Array(existing[0..<count]) == Array(bytes) { report.alreadyThere += 1 } else { report.conflicts.append(file.path) }
                continue
            }
            guard errno == ENODATA else { throw StorageError(errno: errno, operation: "fgetxattr \(file.path)") }
            let value = Array(bytes)
            guard fsetxattr(fd, FileKeyAttribute.attributeName, value, value.count, Int32(XATTR_CREATE)) == 0 else {
                if errno == EEXIST { report.conflicts.append(file.path); continue }
                throw StorageError(errno: errno, operation: "fsetxattr \(file.path)")
            }
            report.restored.append(file.path)
        }
        try restoreDirectoryIDs(cipherDirectory: cipherDirectory, into: &report)
        return report
    }

    /// Refuses a manifest of another volume, another format, or whose MAC does not verify.
    func verify(_ volume: Volume) throws {
        guard format == Self.formatName else { throw VolumeError.tamperedConfiguration("not a kmsfs key manifest (format \(format))") }
        guard volumeID == volume.configuration.volumeID else {
            throw VolumeError.tamperedConfiguration("the manifest is of volume \(volumeID), not of this one (\(volume.configuration.volumeID))")
        }
        guard let blob = Data(base64Encoded: wrappedKey), !blob.isEmpty else { throw VolumeError.tamperedConfiguration("the manifest's key is malformed") }
        let key: SecretBytes
        do { key = try volume.keys.unwrapKey(Array(blob), keyID: keyARN, context: Self.context(volumeID: volumeID)) } catch {
            throw VolumeError.tamperedConfiguration("the manifest's key does not unwrap for this volume: \(error)")
        }
        guard ConstantTime.equal(HMAC.sha256(key: key, message: authenticatedBytes), unhex(mac) ?? []) else {
            throw VolumeError.tamperedConfiguration("the manifest's MAC does not verify")
        }
    }
}
