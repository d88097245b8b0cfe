import CLinux
import Foundation
import KMSFSFormat
#if canImport(Glibc)
import Glibc
#endif

/// What a backing file says about its key without unwrapping it: its header (the file ID the
/// encryption context is made of) and its key attribute (the wrapping KMS key and blob).
public struct StoredFileKey: Sendable {
    public var header: FileHeader
    public var attribute: FileKeyAttribute

    /// Reads both from the backing file open on `fd`.
    /// - Throws: ``FileKeyError`` (no attribute, malformed, another file's), ``FormatError`` (no
    ///   header), ``StorageError``.
    public static func read(fd: Int32) throws -> StoredFileKey {
        let header = try BackingFile.readHeader(FileDescriptorStorage(fd: fd))
        let attribute = try BackingFile.readAttribute(fd: fd)
        guard attribute.fileID == header.fileID.bytes else { throw FileKeyError.fileIDMismatch }
        return StoredFileKey(header: header, attribute: attribute)
    }

    /// The ARN of the KMS key that protects the file: its wrapping key, or its bucket's (read
    /// from the bucket's record in `cipherDirectory`).
    public func keyARN(cipherDirectory: String) throws -> String {
        switch attribute {
        case let .wrapped(wrapped): return wrapped.keyARN
        case let .bucket(bucket): return try BucketRecord.read(cipherDirectory: cipherDirectory, bucketID: bucket.bucketID).keyARN
        }
    }
}

/// What re-wrapping one file did.
public enum RewrapOutcome: Equatable, Sendable {
    /// The key attribute was replaced; the data key was wrapped under `from` before.
    case rewrapped(from: String)
    /// Already wrapped under the destination key: nothing to do (a resumed run skips these).
    case alreadyThere
    /// Wrapped under a key the caller did not select.
    case notSelected(keyARN: String)
}

extension FileKeys {
    /// Re-wraps the data key of the file open on `fd` under `destinationARN` when `selected`
    /// says so of its current key, and replaces its key attribute in one setxattr(2): a crash
    /// leaves the old attribute or the new one, both of which open the file, so a run killed at
    /// any moment is resumed by running it again. File contents are never read or written.
    public func rewrap(fd: Int32, to destinationARN: String, selected: (String) -> Bool = { _ in true }) throws -> RewrapOutcome {
        let stored = try StoredFileKey.read(fd: fd)
        guard case let .wrapped(attribute) = stored.attribute else { throw FileKeyError.bucketKeyed }
        let current = attribute.keyARN
        if current == destinationARN { return .alreadyThere }
        guard selected(current) else { return .notSelected(keyARN: current) }
        let value = try rewrapped(attribute, header: stored.header, to: destinationARN).encoded
        guard fsetxattr(fd, FileKeyAttribute.attributeName, value, value.count, Int32(XATTR_REPLACE)) == 0 else {
            throw StorageError(errno: errno, operation: "fsetxattr \(FileKeyAttribute.attributeName)")
        }
        return .rewrapped(from: current)
    }
}
