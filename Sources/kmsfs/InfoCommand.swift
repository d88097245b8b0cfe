import ArgumentParser
import CLinux
import Foundation
import KMSFSVolume
#if canImport(Glibc)
import Glibc
#endif

/// `kmsfs info PATH`: which KMS key protects a file (the analog of `aws s3api head-object` on an
/// SSE-KMS object), or which key a directory's new files get. PATH is in a mount (answered by
/// the mount's read-only `user.kmsfs.info` attribute) or in a backing directory (read directly).
/// Neither way calls the key service.
struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Show the KMS key, encryption context and layout of a file (in a mount or a backing directory)."
    )

    @Argument(help: "A file or directory in a kmsfs mount or in a volume's backing directory.")
    var path: String

    func run() throws {
        do {
            let lines = try Self.fromMount(path) ?? Self.fromBacking(path)
            lines.forEach { print($0) }
        } catch {
            throw CommandFailure("kmsfs info: \(error)")
        }
    }

    /// The mount's answer, nil when `path` is not in a kmsfs mount.
    static func fromMount(_ path: String) throws -> [String]? {
        let size = getxattr(path, "user.kmsfs.info", nil, 0)
        guard size >= 0 else {
            if errno == ENODATA || errno == ENOTSUP { return nil }
            throw InfoError("\(path): \(String(cString: strerror(errno)))")
        }
        var value = [UInt8](repeating: 0, count: size + 1024)
        let count = getxattr(path, "user.kmsfs.info", &value, value.count)
        guard count >= 0 else { throw InfoError("\(path): \(String(cString: strerror(errno)))") }
        return String(decoding: value[0..<count], as: UTF8.self).split(separator: "\n").map(String.init)
    }

    static func fromBacking(_ path: String) throws -> [String] {
        var info = stat()
        guard stat(path, &info) == 0 else { throw InfoError("\(path): \(String(cString: strerror(errno)))") }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            let (directory, configuration) = try FileInfo.volume(containing: path)
            return try FileInfo.read(backingPath: path, cipherDirectory: directory, volume: configuration).lines
        }
        let isRoot = FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent(VolumeConfiguration.fileName))
        let (rootPath, volume) = isRoot ? (path, try VolumeConfiguration.load(cipherDirectory: path)) : try FileInfo.volume(containing: path)
        var rootInfo = stat()
        guard stat(rootPath, &rootInfo) == 0 else { throw InfoError("\(rootPath): \(String(cString: strerror(errno)))") }
        let fd = open(path, CLinux_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw InfoError("\(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let key = try DirectoryKey.resolve(directoryFD: fd, root: (UInt64(rootInfo.st_dev), UInt64(rootInfo.st_ino)),
                                           rootPath: rootPath, volumeDefault: volume.defaultKeyID, allowed: volume.allowedKeyIDs)
        return FileInfo.directoryLines(keyID: key.keyID, source: key.source)
    }
}

struct InfoError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
