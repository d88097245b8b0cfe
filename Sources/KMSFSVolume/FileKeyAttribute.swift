/// The value of a backing file's `user.kmsfs.key` attribute, in either of its formats: the
/// first byte says which.
public enum FileKeyAttribute: Equatable, Sendable {
    /// Format 1: the file's own data key, wrapped by the KMS (per-file keys).
    case wrapped(WrappedFileKey)
    /// Format 2: the file's key is derived from a bucket key (``BucketFileKey``).
    case bucket(BucketFileKey)

    public static let attributeName = WrappedFileKey.attributeName

    /// The file ID, which must be the header's.
    public var fileID: [UInt8] {
        switch self {
        case let .wrapped(wrapped): return wrapped.fileID
        case let .bucket(bucket): return bucket.fileID
        }
    }

    public var encoded: [UInt8] {
        switch self {
        case let .wrapped(wrapped): return wrapped.encoded
        case let .bucket(bucket): return bucket.encoded
        }
    }

    /// - Throws: ``FileKeyError/malformedAttribute`` for anything that is neither format.
    public init(decoding bytes: [UInt8]) throws(FileKeyError) {
        switch bytes.first {
        case WrappedFileKey.format: self = .wrapped(try WrappedFileKey(decoding: bytes))
        case BucketFileKey.format: self = .bucket(try BucketFileKey(decoding: bytes))
        default: throw .malformedAttribute
        }
    }
}

/// A file whose data key is derived from a bucket key (`kmsfs init --bucket-keys`):
///
/// ```
/// u8   format (2)
/// 16   file ID (the same as in the file's header)
/// 16   bucket ID (names kmsfs.buckets/<hex>, which holds the bucket key wrapped by the KMS)
/// ```
///
/// 33 bytes, against about 200 for a wrapped key: the attribute fits in an ext4 inode's own
/// attribute space (about 60 bytes of value with 256-byte inodes), so a small file costs no
/// separate attribute block, and reading it costs no extra disk read. The file's key is
/// HKDF-SHA-256 of the bucket key with the volume and file IDs (``BucketKeys/fileKey``): it
/// exists nowhere else, and a file's attribute moved to another file derives a key that does
/// not authenticate that file's chunks.
public struct BucketFileKey: Equatable, Sendable {
    static let format: UInt8 = 2
    public static let bucketIDByteCount = 16

    public var fileID: [UInt8]
    public var bucketID: [UInt8]

    public init(fileID: [UInt8], bucketID: [UInt8]) {
        precondition(fileID.count == 16 && bucketID.count == Self.bucketIDByteCount)
        self.fileID = fileID
        self.bucketID = bucketID
    }

    public var encoded: [UInt8] { [Self.format] + fileID + bucketID }

    public init(decoding bytes: [UInt8]) throws(FileKeyError) {
        guard bytes.count == 1 + 16 + Self.bucketIDByteCount, bytes[0] == Self.format else { throw .malformedAttribute }
        self.init(fileID: Array(bytes[1..<17]), bucketID: Array(bytes[17...]))
    }
}
