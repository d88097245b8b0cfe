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
    public var attribute: WrappedFileKey

    /// Reads both from the backing file open on `fd`.
    /// - Throws: ``FileKeyError`` (no attribute, malformed, another file's), ``FormatError`` (no
    ///   header), ``StorageError``.
    public static func read(fd: Int32) throws -> StoredFileKey {
        let header = try BackingFile.readHeader(FileDescriptorStorage(fd: fd))
        let attribute = try BackingFile.readAttribute(fd: fd)
        guard attribute.fileID == header.fileID.bytes else { throw FileKeyError.fileIDMismatch }
        return StoredFileKey(header: header, attribute: attribute)
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
        let current = stored.attribute.keyARN
        if current == destinationARN { return .alreadyThere }
        guard selected(current) else { return .notSelected(keyARN: current) }
        let value = try rewrapped(stored.attribute, header: stored.header, to: destinationARN).encoded
        guard fsetxattr(fd, WrappedFileKey.attributeName, value, value.count, Int32(XATTR_REPLACE)) == 0 else {
            throw StorageError(errno: errno, operation: "fsetxattr \(WrappedFileKey.attributeName)")
        }
        return .rewrapped(from: current)
    }
}
