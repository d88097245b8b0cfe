import Foundation
import KMSFSCrypto
#if canImport(Glibc)
import Glibc
#endif

/// The files that say where a root key is, or hold one (and passphrase files): checked before a
/// byte is read.
///
/// Such a file may have been planted (a record pointing at /proc/kmsg, a FIFO, a 3 GB sparse
/// file, a key file anyone can read or replace): it is opened without following a final symlink
/// and without blocking, must be a regular file of a bounded size, owned by the caller or root,
/// and writable by no one else — a key file readable by no one else either, as ssh demands of
/// its keys. Nothing about a refused file is reported but its path and why.
public enum GuardedFile {
    public enum Access {
        /// Readable and writable by its owner alone (keys, passphrases).
        case ownerOnly
        /// Writable by its owner alone (records, directories).
        case ownerWritable
    }

    /// An open descriptor for `path` (the caller closes it), once `path` passes the checks.
    public static func open(_ path: String, what: String, maximumSize: Int, access: Access) throws -> Int32 {
        let fd = Glibc.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else {
            throw VolumeError.rootKey("\(what) \(path) cannot be opened: \(String(cString: strerror(errno)))")
        }
        do {
            var status = stat()
            guard fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
                throw VolumeError.rootKey("\(what) \(path) is not a regular file")
            }
            guard status.st_size <= maximumSize else { throw VolumeError.rootKey("\(what) \(path) is too large to be one") }
            try check(status, path: path, what: what, access: access)
            return fd
        } catch {
            close(fd)
            throw error
        }
    }

    /// The whole of `path` (at most `maximumSize` bytes), checked as ``open(_:what:maximumSize:access:)``.
    public static func read(_ path: String, what: String, maximumSize: Int, access: Access) throws -> [UInt8] {
        let fd = try open(path, what: what, maximumSize: maximumSize, access: access)
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: maximumSize + 1)
        defer { bytes.withUnsafeMutableBytes { SecretBytes.wipe($0) } }  // a passphrase may pass through
        var count = 0
        while count < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw VolumeError.rootKey("\(what) \(path) cannot be read: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            count += n
        }
        guard count <= maximumSize else { throw VolumeError.rootKey("\(what) \(path) is too large to be one") }
        return Array(bytes[0..<count])
    }

    /// A directory that holds them: owned by the caller or root, writable by no one else.
    static func checkDirectory(_ path: String, what: String) throws {
        var status = stat()
        guard stat(path, &status) == 0 else { return }  // a missing store is reported by what needs it
        guard status.st_mode & S_IFMT == S_IFDIR else { throw VolumeError.rootKey("\(what) \(path) is not a directory") }
        try check(status, path: path, what: what, access: .ownerWritable)
    }

    private static func check(_ status: stat, path: String, what: String, access: Access) throws {
        guard status.st_uid == geteuid() || status.st_uid == 0 else {
            throw VolumeError.rootKey("\(what) \(path) belongs to uid \(status.st_uid), not to this user or root: refusing it")
        }
        let foreign = status.st_mode & (access == .ownerOnly ? 0o077 : 0o022)
        guard foreign == 0 else {
            let mode = String(status.st_mode & 0o777, radix: 8)
            throw VolumeError.rootKey("\(what) \(path) has mode \(mode): others may \(access == .ownerOnly ? "read or change" : "change") it (chmod go-\(access == .ownerOnly ? "rwx" : "w"))")
        }
    }
}
