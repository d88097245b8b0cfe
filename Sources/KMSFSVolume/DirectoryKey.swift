import CLinux
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A directory's default KMS key for new files below it: the analog of an S3 bucket's default
/// encryption. Kept in an extended attribute of the backing directory and found by walking up to
/// the volume's root, so that it covers the whole subtree, follows renames, and needs no state.
public enum DirectoryKey {
    /// The attribute, settable through the mount on directories (the one `user.kmsfs.` name that is).
    public static let attributeName = "user.kmsfs.key-id"
    /// A key ID, key ARN, alias name or alias ARN: AWS's longest form is 2048 characters.
    static let maximumLength = 2048

    /// Where a directory's default key comes from.
    public enum Source: Sendable, Equatable {
        /// Set on the directory itself (".") or on the one at this path in the volume.
        case directory(String)
        case volumeDefault
    }

    /// The key for new files in the backing directory `directoryFD` (any descriptor, O_PATH too):
    /// the nearest `user.kmsfs.key-id` at or above it, up to the volume's root directory
    /// (`root`, at `rootPath`, which only names the source).
    ///
    /// The attribute is data in the untrusted backing directory: a value that is not the
    /// volume's default key or one of `allowed` (the authenticated configuration's list) is
    /// passed to `ignored` and skipped, as if unset — never followed.
    public static func resolve(directoryFD: Int32, root: (device: UInt64, inode: UInt64), rootPath: String,
                               volumeDefault: String, allowed: [String],
                               ignored: (String) -> Void = { _ in }) throws -> (keyID: String, source: Source) {
        var current = dup(directoryFD)
        guard current >= 0 else { throw StorageError(errno: errno, operation: "dup") }
        defer { close(current) }
        for level in 0..<4096 {
            if let keyID = try value(at: "/proc/self/fd/\(current)") {
                if keyID == volumeDefault || allowed.contains(keyID) {
                    return (keyID, .directory(level == 0 ? "." : relativePath(of: current, rootPath: rootPath)))
                }
                ignored(keyID)
            }
            var info = stat()
            guard fstatat(current, "", &info, CLinux_AT_EMPTY_PATH) == 0 else { throw StorageError(errno: errno, operation: "fstatat") }
            if UInt64(info.st_dev) == root.device && UInt64(info.st_ino) == root.inode { break }
            let parent = openat(current, "..", CLinux_O_PATH | O_DIRECTORY | O_CLOEXEC)
            guard parent >= 0 else { throw StorageError(errno: errno, operation: "openat ..") }
            close(current)
            current = parent
        }
        return (volumeDefault, .volumeDefault)
    }

    /// The attribute's value on `path`, nil when unset.
    public static func value(at path: String) throws -> String? {
        var buffer = [UInt8](repeating: 0, count: maximumLength)
        let count = getxattr(path, attributeName, &buffer, buffer.count)
        guard count >= 0 else {
            if errno == ENODATA { return nil }
            throw StorageError(errno: errno, operation: "getxattr \(attributeName)")
        }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }

    /// Checks the shape of a value before it is stored (the key service checks the key itself).
    public static func isWellFormed(_ value: [UInt8]) -> Bool {
        !value.isEmpty && value.count <= maximumLength && value.allSatisfy { $0 > 0x20 && $0 < 0x7f }
    }

    /// Where the directory open on `fd` is in the volume (only for messages: `kmsfs info`).
    private static func relativePath(of fd: Int32, rootPath: String) -> String {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)") else { return "?" }
        let root = URL(fileURLWithPath: rootPath).resolvingSymlinksInPath().path
        return target.hasPrefix(root + "/") ? String(target.dropFirst(root.count + 1)) : target
    }
}
