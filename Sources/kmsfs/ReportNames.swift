import Foundation
import CLinux
import KMSFSFormat
import KMSFSVolume
#if canImport(Glibc)
import Glibc
#endif

/// How the reports that only read a volume (keys, shred-report, rewrap --dry-run) show its paths
/// when names are encrypted, without taking the volume's lock:
/// - mounted: through the mount, whose daemon holds the name key already — each file's
///   `user.kmsfs.backing-path` (root's or the file's owner's to read). An embedded key store is
///   locked by its mount, so asking the key service would fail there;
/// - unmounted: the name key from the key service, the seal verified as fsck verifies it;
/// - neither: backing paths, said on standard error (`kmsfs name decrypt` translates them).
struct ReportNames {
    /// Given to the walk, which decrypts names as it goes.
    var cipher: NameCipher?
    /// Backing path → plaintext path, read through the mount.
    var mapped: [String: String]?
    /// The subtree to walk: plaintext with ``cipher``, else as stored.
    var subtree: String
    /// The mount files were mapped through, when some were not (not the caller's to ask).
    var unmappedNote: String?

    /// How `path` (a walk entry's `path`) is shown.
    func shown(_ path: String) -> String { mapped?[path] ?? path }

    /// Says on standard error what was not translated, if anything.
    func warnIfIncomplete(_ command: String) {
        if let unmappedNote { FileHandle.standardError.write(Data("kmsfs \(command): \(unmappedNote)\n".utf8)) }
    }

    /// The names to report `subtree` (a plaintext path relative to the volume's root) of the
    /// volume in `cipherDirectory` with.
    static func resolve(cipherDirectory: String, subtree: String, keyService: KeyServiceFlags, command: String) throws -> ReportNames {
        let configuration = try VolumeConfiguration.load(cipherDirectory: cipherDirectory)
        guard configuration.nameKey != nil else { return ReportNames(subtree: subtree) }
        if let mountPoint = VolumeLock.mountPoints(of: cipherDirectory).last {
            return try throughMount(mountPoint, subtree: subtree)
        }
        do {
            let options = try keyService.resolved(cipherDirectory: cipherDirectory)
            return ReportNames(cipher: try VolumeNames.open(cipherDirectory: cipherDirectory, options: options), subtree: subtree)
        } catch {
            guard subtree.isEmpty else { throw CommandFailure("--path needs the volume's names, which the key service did not give: \(error)") }
            FileHandle.standardError.write(Data("""
                kmsfs \(command): paths are backing paths: the key service did not give the volume's name key (\(error)); \
                kmsfs name decrypt translates them

                """.utf8))
            return ReportNames(subtree: "")
        }
    }

    private static func throughMount(_ mountPoint: String, subtree: String) throws -> ReportNames {
        var mapped: [String: String] = [:], unmapped = 0
        try VolumeFiles.forEachFile(in: mountPoint, under: subtree) { entry in
            // O_PATH: the attribute is read without opening the file (which would unwrap its key).
            let fd = entry.open(CLinux_O_PATH)
            guard fd >= 0, let backing = backingPath("/proc/self/fd/\(fd)") else {
                if fd >= 0 { close(fd) }
                unmapped += 1
                return
            }
            close(fd)
            mapped[backing] = entry.path
        }
        var stored = ""
        if !subtree.isEmpty {
            guard let backing = backingPath((mountPoint as NSString).appendingPathComponent(subtree)) else {
                throw CommandFailure("--path \(subtree): \(String(cString: strerror(errno))) (through the mount at \(mountPoint))")
            }
            stored = backing
        }
        var names = ReportNames(mapped: mapped, subtree: stored)
        if unmapped > 0 {
            names.unmappedNote = "\(unmapped) paths are backing paths: the mount at \(mountPoint) did not translate them (not yours to ask; run as root)"
        }
        return names
    }

    /// The mount's `user.kmsfs.backing-path` of `path`, or nil (errno set).
    private static func backingPath(_ path: String) -> String? {
        var value = [UInt8](repeating: 0, count: 8192)
        let count = getxattr(path, "user.kmsfs.backing-path", &value, value.count)
        return count >= 0 ? String(decoding: value.prefix(count), as: UTF8.self) : nil
    }
}
