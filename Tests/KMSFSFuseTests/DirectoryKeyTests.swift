import CLinux
import Foundation
import KMSFSVolume
import Testing

/// The per-directory default key (`user.kmsfs.key-id`) and the read-only `user.kmsfs.info`
/// attribute, through a real mount.
@Suite(.serialized, .enabled(if: FileManager.default.fileExists(atPath: "/dev/fuse")))
struct DirectoryKeyTests {
    func attribute(_ path: String, _ name: String) -> String? {
        var value = [UInt8](repeating: 0, count: 8192)
        let count = getxattr(path, name, &value, value.count)
        return count < 0 ? nil : String(decoding: value[0..<count], as: UTF8.self)
    }

    func names(_ path: String) -> [String] {
        var raw = [CChar](repeating: 0, count: 4096)
        let count = listxattr(path, &raw, raw.count)
        return raw[0..<max(count, 0)].split(separator: 0).map { String(cString: Array($0) + [0]) }
    }

    /// A key set on a directory protects new files anywhere below it (and only there); existing
    /// files keep their keys; removing it brings back the volume's default; info says which.
    @Test func directoryDefaultKeyCoversItsSubtree() throws {
        let volume = try MountedVolume()
        defer { volume.unmount() }
        let projectKey = try volume.makeKey(alias: "alias/project")
        try volume.mount()
        let m = volume.mountPoint
        try FileManager.default.createDirectory(atPath: m + "/project/deep/er", withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: m + "/project/before.txt", contents: Data("b".utf8)))
        #expect(setxattr(m + "/project", DirectoryKey.attributeName, "alias/project", 13, 0) == 0)
        #expect(attribute(m + "/project", DirectoryKey.attributeName) == "alias/project")
        #expect(names(m + "/project").contains(DirectoryKey.attributeName))

        #expect(FileManager.default.createFile(atPath: m + "/project/deep/er/new.txt", contents: Data("n".utf8)))
        #expect(FileManager.default.createFile(atPath: m + "/outside.txt", contents: Data("o".utf8)))
        let keyOf = { (path: String) in try FileInfo.read(backingPath: volume.cipher + path, cipherDirectory: volume.cipher, volume: volume.configuration).keyARN }
        #expect(try keyOf("/project/deep/er/new.txt") == projectKey)
        #expect(try keyOf("/outside.txt") == volume.configuration.defaultKeyID)
        #expect(try keyOf("/project/before.txt") == volume.configuration.defaultKeyID)
        #expect(FileManager.default.contents(atPath: m + "/project/deep/er/new.txt") == Data("n".utf8))

        // info, through the mount's virtual attribute: files and directories, set or inherited.
        let fileInfo = try #require(attribute(m + "/project/deep/er/new.txt", "user.kmsfs.info"))
        #expect(fileInfo.contains("KMS key: \(projectKey)") && fileInfo.contains("plaintext size: 1"))
        #expect(attribute(m + "/project", "user.kmsfs.info")?.contains("alias/project (set on this directory") == true)
        #expect(attribute(m + "/project/deep/er", "user.kmsfs.info")?.contains("alias/project (inherited from project") == true)
        #expect(attribute(m, "user.kmsfs.info")?.contains("the volume's default") == true)
        #expect(!names(m + "/project/deep/er/new.txt").contains("user.kmsfs.info"))
        #expect(setxattr(m + "/outside.txt", "user.kmsfs.info", "x", 1, 0) == -1 && errno == EPERM)

        // A renamed tree keeps what is set on it; removal restores the default.
        #expect(rename(m + "/project", m + "/renamed") == 0)
        #expect(FileManager.default.createFile(atPath: m + "/renamed/deep/after.txt", contents: Data()))
        #expect(try keyOf("/renamed/deep/after.txt") == projectKey)
        #expect(removexattr(m + "/renamed", DirectoryKey.attributeName) == 0)
        #expect(FileManager.default.createFile(atPath: m + "/renamed/deep/last.txt", contents: Data()))
        #expect(try keyOf("/renamed/deep/last.txt") == volume.configuration.defaultKeyID)
    }

    /// The key is checked when set: a missing key or a malformed value is refused and nothing is
    /// stored; the attribute is for directories only.
    @Test func badDirectoryKeysAreRefused() throws {
        let volume = try MountedVolume()
        defer { volume.unmount() }
        try volume.mount()
        let m = volume.mountPoint
        try FileManager.default.createDirectory(atPath: m + "/dir", withIntermediateDirectories: true)
        #expect(setxattr(m + "/dir", DirectoryKey.attributeName, "alias/missing", 13, 0) == -1 && errno == EACCES)
        #expect(setxattr(m + "/dir", DirectoryKey.attributeName, "bad key", 7, 0) == -1 && errno == EINVAL)
        #expect(attribute(volume.cipher + "/dir", DirectoryKey.attributeName) == nil)
        #expect(volume.log.contains("refused user.kmsfs.key-id=alias/missing"))
        #expect(FileManager.default.createFile(atPath: m + "/file", contents: Data()))
        #expect(setxattr(m + "/file", DirectoryKey.attributeName, "alias/x", 7, 0) == -1 && errno == EPERM)
        #expect(attribute(m + "/file", DirectoryKey.attributeName) == nil && errno == ENODATA)
    }
}
