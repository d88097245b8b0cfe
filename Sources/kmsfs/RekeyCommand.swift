import ArgumentParser
import CLinux
import Foundation
import KMSFSVolume

/// `kmsfs rekey`: files given new data keys and their contents re-encrypted, after a suspected
/// exposure of data keys (a leaked core dump, a compromised mount host). Works through the mount:
/// each file is copied to a new file beside it (which gets a new data key, under its directory's
/// KMS key), then renamed over it — the daemon keeps its view of the tree, a reader that has the
/// file open goes on reading the old contents until it reopens, and a crash leaves the old file
/// or the new one under the name, never neither (and a temporary file that the next run removes).
struct RekeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rekey",
        abstract: "Give files of a mounted volume new data keys, re-encrypting their contents.",
        discussion: """
        PATHS are files or (with --recursive) directories of a mounted volume. Mode, owner (as \
        root), times and user.* attributes are kept; the new key is under the directory's KMS \
        key. Files with several hard links are skipped (a new file would split them), and so is \
        a file written to while it is copied (run again when it is quiet). Exit status: 0 done, \
        4 some files were skipped or failed (listed), 8 nothing could be done.
        """)

    @Argument(help: "Files (or directories, with --recursive) inside a kmsfs mount.")
    var paths: [String]

    @Flag(name: .shortAndLong, help: "Rekey every file under the directories given.")
    var recursive = false

    static let temporaryPrefix = ".kmsfs-rekey."

    func run() throws {
        var files: [String] = []
        do {
            for path in paths {
                let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
                guard Self.insideMount(absolute) else { throw CommandFailure("\(path) is not inside a kmsfs mount") }
                try collect(absolute, into: &files)
            }
        } catch {
            FileHandle.standardError.write(Data("kmsfs rekey: \(error)\n".utf8))
            throw ExitCode(8)
        }
        let progress = ProgressLine("rekey", total: files.count)
        var done = 0, problems: [(String, String)] = []
        for file in files {
            do {
                try Self.rekey(file)
                done += 1
            } catch {
                problems.append((file, "\(error)"))
            }
            progress.advance()
        }
        progress.finish()
        for (file, reason) in problems { print("SKIPPED \(file): \(reason)") }
        print("kmsfs rekey: \(done) files given new keys, \(problems.count) skipped")
        if !problems.isEmpty { throw ExitCode(4) }
    }

    /// Whether `path` is at or below a kmsfs mount point (what the kernel's mount table says).
    static func insideMount(_ path: String) -> Bool {
        var candidate = path
        while true {
            if VolumeLock.mountedVolume(at: candidate) != nil { return true }
            guard candidate != "/", !candidate.isEmpty else { return false }
            candidate = (candidate as NSString).deletingLastPathComponent
        }
    }

    private func collect(_ path: String, into files: inout [String]) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw SystemCallFailure(path, errno) }
        switch info.st_mode & S_IFMT {
        case S_IFREG: files.append(path)
        case S_IFDIR:
            guard recursive else { throw CommandFailure("\(path) is a directory (--recursive)") }
            for name in try FileManager.default.contentsOfDirectory(atPath: path).sorted() {
                let child = path + "/" + name
                if name.hasPrefix(Self.temporaryPrefix) {
                    unlink(child)  // what an interrupted run left
                    continue
                }
                var childInfo = stat()
                guard lstat(child, &childInfo) == 0 else {
                    // Gone meanwhile is nothing to do; anything else (a path past PATH_MAX) is
                    // said, not skipped in silence.
                    if errno != ENOENT { files.append(child) }
                    continue
                }
                if childInfo.st_mode & S_IFMT == S_IFDIR || childInfo.st_mode & S_IFMT == S_IFREG { try collect(child, into: &files) }
            }
        default: return
        }
    }

    /// Copies `path` to a new file beside it and renames that over it, if `path` did not change
    /// meanwhile.
    static func rekey(_ path: String) throws {
        let source = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard source >= 0 else { throw SystemCallFailure("open", errno) }
        defer { close(source) }
        var before = stat()
        guard fstat(source, &before) == 0 else { throw SystemCallFailure("fstat", errno) }
        guard before.st_nlink == 1 else { throw CommandFailure("it has \(before.st_nlink) hard links") }
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = directory + "/" + temporaryPrefix + (path as NSString).lastPathComponent.prefix(100) + "." + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let target = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard target >= 0 else { throw SystemCallFailure("create beside it", errno) }
        var renamed = false
        defer {
            close(target)
            if !renamed { unlink(temporary) }
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: off_t = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { pread(source, $0.baseAddress, $0.count, offset) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw SystemCallFailure("read", errno) }
            if count == 0 { break }
            var written = 0
            while written < count {
                let n = buffer.withUnsafeBytes { pwrite(target, $0.baseAddress! + written, count - written, offset + off_t(written)) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw SystemCallFailure("write", errno) }
                written += n
            }
            offset += off_t(count)
        }
        try copyUserAttributes(from: source, to: target)
        if getuid() == 0 { guard fchown(target, before.st_uid, before.st_gid) == 0 else { throw SystemCallFailure("fchown", errno) } }
        guard fchmod(target, before.st_mode & 0o7777) == 0 else { throw SystemCallFailure("fchmod", errno) }
        var times = [before.st_atim, before.st_mtim]
        guard futimens(target, &times) == 0, fsync(target) == 0 else { throw SystemCallFailure("futimens/fsync", errno) }
        var after = stat()
        guard fstat(source, &after) == 0, after.st_size == before.st_size, after.st_mtim.tv_sec == before.st_mtim.tv_sec,
              after.st_mtim.tv_nsec == before.st_mtim.tv_nsec, offset == before.st_size else {
            throw CommandFailure("it was written to while it was copied")
        }
        guard rename(temporary, path) == 0 else { throw SystemCallFailure("rename", errno) }
        renamed = true
    }

    /// The user's own attributes (not kmsfs's, which the mount neither lists nor lets be set).
    static func copyUserAttributes(from source: Int32, to target: Int32) throws {
        let size = flistxattr(source, nil, 0)
        guard size > 0 else { return }
        var names = [CChar](repeating: 0, count: size)
        let count = flistxattr(source, &names, size)
        guard count >= 0 else { throw SystemCallFailure("listxattr", errno) }
        for raw in names[0..<count].split(separator: 0) {
            let name = String(decoding: raw.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard name.hasPrefix("user."), !name.hasPrefix("user.kmsfs.") else { continue }
            var value = [UInt8](repeating: 0, count: 65536)
            let length = fgetxattr(source, name, &value, value.count)
            guard length >= 0 else { throw SystemCallFailure("getxattr \(name)", errno) }
            guard fsetxattr(target, name, value, length, 0) == 0 else { throw SystemCallFailure("setxattr \(name)", errno) }
        }
    }
}
