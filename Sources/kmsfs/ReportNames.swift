import CLinux
import Foundation
import KMSFSFormat
import KMSFSVolume
#if canImport(Glibc)
import Glibc
#endif

/// How the reports that only read a volume (keys, shred-report, rewrap --dry-run) show its paths
/// when names are encrypted, without taking the volume's lock:
/// - mounted (by root or the volume's owner): through the mount, whose daemon holds the name
///   key already — each file's `user.kmsfs.backing-path`, which the daemon answers for root and
///   its own user. An embedded key store is locked by its mount, so asking the key service would
///   fail there;
/// - unmounted: the name key from the key service, the seal verified as fsck verifies it;
/// - neither: backing paths, said on standard error (`kmsfs name decrypt` translates them).
///
/// Whatever is not translated is printed as its backing path and marked so: a name printed
/// without a mark is one the volume's key made.
struct ReportNames {
    /// Given to the walk, which decrypts names as it goes.
    var cipher: NameCipher?
    /// The plaintext paths of each backing file (by inode: hard links have several), read
    /// through the mount.
    private var throughMount: [BackingFile: [String]]?
    /// The subtree to walk: plaintext with ``cipher``, else as stored.
    var subtree: String
    /// Said on standard error at the end, if set.
    private var note: String?
    private var printed = Set<BackingFile>()

    /// A file of the backing filesystem, as stat names it.
    struct BackingFile: Hashable {
        let device: UInt64, inode: UInt64
        init(_ info: stat) { (device, inode) = (UInt64(info.st_dev), UInt64(info.st_ino)) }
    }
    private var untranslated = 0

    init(cipher: NameCipher? = nil, subtree: String) {
        self.cipher = cipher
        self.subtree = subtree
    }

    /// The paths to print for a file the walk gave as `path` (`info`: its backing file's, when
    /// the walk could stat it): one, or several for a hard-linked file through the mount (all of
    /// them at its first backing name, none at the others).
    mutating func shown(_ path: String, _ info: stat?) -> [String] {
        guard let throughMount else { return [path] }
        if let info, let paths = throughMount[BackingFile(info)] {
            return printed.insert(BackingFile(info)).inserted ? paths : []
        }
        untranslated += 1
        return [path + " (backing path: not translated by the mount)"]
    }

    /// Says on standard error what was not translated, if anything.
    func warnIfIncomplete(_ command: String) {
        var lines = note.map { [$0] } ?? []
        if untranslated > 0 {
            lines.append("\(untranslated) paths are backing paths: the mount did not translate them (files it does not show, or not yours to ask: run as root)")
        }
        for line in lines { FileHandle.standardError.write(Data("kmsfs \(command): \(line)\n".utf8)) }
    }

    /// The names to report `subtree` (a plaintext path relative to the volume's root) of the
    /// volume in `cipherDirectory` with.
    static func resolve(cipherDirectory: String, subtree: String, keyService: KeyServiceFlags, command: String) throws -> ReportNames {
        let configuration = try VolumeConfiguration.load(cipherDirectory: cipherDirectory)
        guard configuration.nameKey != nil else { return ReportNames(subtree: subtree) }
        if let mountPoint = VolumeLock.trustedMountPoints(of: cipherDirectory).last {
            return try throughMount(mountPoint, cipherDirectory: cipherDirectory, subtree: subtree)
        }
        do {
            let options = try keyService.resolved(cipherDirectory: cipherDirectory)
            return ReportNames(cipher: try VolumeNames.open(cipherDirectory: cipherDirectory, options: options), subtree: subtree)
        } catch {
            guard subtree.isEmpty else { throw CommandFailure("--path needs the volume's names, which the key service did not give: \(error)") }
            var names = ReportNames(subtree: "")
            names.note = "paths are backing paths: the key service did not give the volume's name key (\(error)); kmsfs name decrypt translates them"
            return names
        }
    }

    private static func throughMount(_ mountPoint: String, cipherDirectory: String, subtree: String) throws -> ReportNames {
        let root = open(cipherDirectory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard root >= 0 else { throw CommandFailure("\(cipherDirectory): \(String(cString: strerror(errno)))") }
        defer { close(root) }
        var byFile: [BackingFile: [String]] = [:]
        try VolumeFiles.forEachFile(in: mountPoint, under: subtree) { entry in
            // O_PATH: the attribute is read without opening the file (which would unwrap its key).
            let fd = entry.open(CLinux_O_PATH)
            guard fd >= 0 else { return }
            defer { close(fd) }
            var info = stat()
            guard let backing = backingPath("/proc/self/fd/\(fd)"), fstatat(root, backing, &info, AT_SYMLINK_NOFOLLOW) == 0 else { return }
            byFile[BackingFile(info), default: []].append(entry.path)
        }
        var stored = ""
        if !subtree.isEmpty {
            guard let backing = backingPath((mountPoint as NSString).appendingPathComponent(subtree)) else {
                throw CommandFailure("--path \(subtree): \(String(cString: strerror(errno))) (through the mount at \(mountPoint))")
            }
            stored = backing
        }
        var names = ReportNames(subtree: stored)
        names.throughMount = byFile
        return names
    }

    /// The mount's `user.kmsfs.backing-path` of `path`, or nil (errno set).
    private static func backingPath(_ path: String) -> String? {
        var value = [UInt8](repeating: 0, count: 8192)
        let count = getxattr(path, "user.kmsfs.backing-path", &value, value.count)
        return count >= 0 ? String(decoding: value.prefix(count), as: UTF8.self) : nil
    }
}
