import CLinux
import Foundation
import KMSFSCrypto
import KMSFSFormat
#if canImport(Glibc)
import Glibc
#endif

/// Creating and opening backing files: the key attribute, then the header, then the name.
public enum BackingFile {
    /// Creates `path` (relative to `directoryFD`; it must not exist) as a new empty encrypted
    /// file under `keyID`.
    ///
    /// The file is built unnamed (O_TMPFILE) — key attribute, header, empty final chunk — and
    /// linked in under its name only when complete, so a crash at any point leaves either no
    /// file or a whole empty one, never a name without its key or header. Filesystems without
    /// O_TMPFILE get the name first and the same order inside it (a crash there can leave an
    /// empty file without a key, which opens as EIO).
    ///
    /// No fsync here (it would cost a journal commit, about a millisecond, per file): on
    /// journaling filesystems with ordered metadata (ext4's default data=ordered, XFS, btrfs)
    /// the attribute is committed no later than the link and the block allocations of data
    /// written after it, so a power loss can leave a file whose data is lost, never data
    /// without its key; and fsync(2) of the file through the mount commits the attribute with
    /// the data. On a filesystem without that ordering, `durableKey` fsyncs here as well.
    ///
    /// `owner` (uid, gid) is set before the name appears, and with it the setuid/setgid bits of
    /// `mode` that chown(2) clears.
    public static func create(path: String, relativeTo directoryFD: Int32 = AT_FDCWD, mode: mode_t = 0o600,
                              owner: (uid: uid_t, gid: gid_t)? = nil, keys: FileKeys, keyID: String, holes: HolePolicy = .sealed,
                              durableKey: Bool = false) throws -> (fd: Int32, file: EncryptedFile<FileDescriptorStorage>) {
        try create(path: Array(path.utf8CString), relativeTo: directoryFD, mode: mode, owner: owner, keys: keys, keyID: keyID,
                   holes: holes, durableKey: durableKey)
    }

    /// The same, for a path given as NUL-terminated bytes (names need not be UTF-8).
    public static func create(path: [CChar], relativeTo directoryFD: Int32 = AT_FDCWD, mode: mode_t = 0o600,
                              owner: (uid: uid_t, gid: gid_t)? = nil, keys: FileKeys, keyID: String, holes: HolePolicy = .sealed,
                              durableKey: Bool = false) throws -> (fd: Int32, file: EncryptedFile<FileDescriptorStorage>) {
        let (header, key, attribute) = try keys.newFile(keyID: keyID)
        var fd = openat(directoryFD, directory(of: path), CLinux_O_TMPFILE | O_RDWR | O_CLOEXEC, mode)
        let named = fd < 0 && [EOPNOTSUPP, EISDIR, EINVAL, ENOENT].contains(errno)
        if named { fd = openat(directoryFD, path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode) }
        guard fd >= 0 else { throw StorageError(errno: errno, operation: "open(O_CREAT)") }
        do {
            if let owner {
                guard fchown(fd, owner.uid, owner.gid) == 0 else { throw StorageError(errno: errno, operation: "fchown") }
                if mode & (S_ISUID | S_ISGID) != 0 {
                    guard fchmod(fd, mode & 0o7777) == 0 else { throw StorageError(errno: errno, operation: "fchmod") }
                }
            }
            let value = attribute.encoded
            guard fsetxattr(fd, FileKeyAttribute.attributeName, value, value.count, 0) == 0 else {
                throw StorageError(errno: errno, operation: "fsetxattr")
            }
            if durableKey {
                guard fsync(fd) == 0 else { throw StorageError(errno: errno, operation: "fsync") }
            }
            let file = try EncryptedFile.create(in: FileDescriptorStorage(fd: fd), key: key, header: header, holes: holes)
            // Through /proc (AT_SYMLINK_FOLLOW) rather than AT_EMPTY_PATH, which needs
            // CAP_DAC_READ_SEARCH. EEXIST here is O_EXCL's answer.
            if !named && linkat(AT_FDCWD, "/proc/self/fd/\(fd)", directoryFD, path, CLinux_AT_SYMLINK_FOLLOW) != 0 {
                throw StorageError(errno: errno, operation: "linkat")
            }
            return (fd, file)
        } catch {
            close(fd)
            if named { unlinkat(directoryFD, path, 0) }
            throw error
        }
    }

    /// The directory part of `path` (NUL-terminated): "." for a bare name.
    static func directory(of path: [CChar]) -> [CChar] {
        guard let slash = path.lastIndex(of: 47) else { return [46, 0] }
        return slash == 0 ? [47, 0] : Array(path[..<slash]) + [0]
    }

    /// Opens the encrypted file on `fd`: reads its header and key attribute and unwraps its key.
    /// - Throws: ``FileKeyError/missingAttribute`` if the attribute is gone (a copy without
    ///   xattrs), ``FormatError`` for a damaged header, ``KMSClientError`` if the key does not unwrap.
    public static func open(fd: Int32, keys: FileKeys, holes: HolePolicy = .sealed) throws -> EncryptedFile<FileDescriptorStorage> {
        let storage = FileDescriptorStorage(fd: fd)
        let header = try readHeader(storage)
        let attribute = try readAttribute(fd: fd)
        return try EncryptedFile(opening: storage, key: keys.key(header: header, attribute: attribute), holes: holes)
    }

    static func readHeader(_ storage: FileDescriptorStorage) throws -> FileHeader {
        var bytes = [UInt8](repeating: 0, count: FileHeader.byteCount)
        let count = try bytes.withUnsafeMutableBytes { try storage.read(into: $0, at: 0) }
        guard count == FileHeader.byteCount else { throw FormatError.notAnEncryptedFile }
        return try FileHeader(decoding: bytes)
    }

    static func readAttribute(fd: Int32) throws -> FileKeyAttribute {
        var value = [UInt8](repeating: 0, count: 4096)
        let count = fgetxattr(fd, WrappedFileKey.attributeName, &value, value.count)
        guard count >= 0 else {
            if errno == ENODATA { throw FileKeyError.missingAttribute }
            throw StorageError(errno: errno, operation: "fgetxattr")
        }
        return try FileKeyAttribute(decoding: Array(value[0..<count]))
    }
}
