import CLinux
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One user of a volume at a time: a mount, or `kmsfs fsck`.
///
/// Two daemons writing one backing directory re-seal each other's chunks from stale reads and
/// leave files that no longer authenticate. The holder keeps an exclusive flock(2) on the
/// backing directory itself (no file to leave behind or for the backing directory's writer to
/// plant); the kernel drops it when the holder dies, so a crashed daemon never blocks a
/// remount. Who holds it is read from the kernel too (/proc/locks, /proc/self/mountinfo), not
/// from anything in the backing directory.
public final class VolumeLock: Sendable {
    private let fd: Int32

    /// Takes the lock of the volume in `cipherDirectory`.
    /// - Throws: ``VolumeError/inUse(_:)`` naming the holder ("mounted at MNT (pid N)").
    public init(cipherDirectory: String) throws {
        let fd = open(cipherDirectory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw VolumeError.io("cannot open \(cipherDirectory): \(String(cString: strerror(errno)))") }
        // A holder with no mount of the volume left is most often a daemon finishing its unmount
        // (`umount; mount` in a script): wait for it a little rather than fail at once.
        var waited = 0
        while CLinux_try_lock_exclusive(fd) != 0 && errno == EWOULDBLOCK && waited < 100 && Self.mountPoints(of: cipherDirectory).isEmpty {
            usleep(50_000)
            waited += 1
        }
        guard CLinux_try_lock_exclusive(fd) == 0 else {
            let error = errno
            var info = stat()
            let identity = fstat(fd, &info) == 0 ? (UInt64(info.st_dev), UInt64(info.st_ino)) : nil
            close(fd)
            guard error == EWOULDBLOCK else { throw VolumeError.io("cannot lock \(cipherDirectory): \(String(cString: strerror(error)))") }
            throw VolumeError.inUse(Self.holder(of: cipherDirectory, identity: identity))
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// "mounted at MNT (pid N)", or as much of it as the kernel tells.
    static func holder(of cipherDirectory: String, identity: (device: UInt64, inode: UInt64)?) -> String {
        var parts: [String] = []
        let mountPoints = mountPoints(of: cipherDirectory)
        parts.append(mountPoints.isEmpty ? "in use" : "already mounted at \(mountPoints.joined(separator: ", "))")
        if let identity, let pid = lockHolderPID(identity) { parts.append("(pid \(pid))") }
        return parts.joined(separator: " ")
    }

    /// Mount points of kmsfs mounts whose source is `cipherDirectory` (the mount's fsname).
    static func mountPoints(of cipherDirectory: String) -> [String] {
        kmsfsMounts().filter { $0.source == cipherDirectory }.map(\.mountPoint)
    }

    /// Mount points of kmsfs mounts of `cipherDirectory` that can be its own: made by root or by
    /// the directory's owner (`user_id=` in the kernel's record, which the mount's maker cannot
    /// choose). Anyone may name any directory as a FUSE mount's source (fsname) and type.
    public static func trustedMountPoints(of cipherDirectory: String) -> [String] {
        var info = stat()
        guard stat(cipherDirectory, &info) == 0 else { return [] }
        return kmsfsMounts().filter { mount in
            mount.source == cipherDirectory && (mount.ownerUID == 0 || mount.ownerUID == info.st_uid)
        }.map(\.mountPoint)
    }

    /// The backing directory of the kmsfs mount at `mountPoint`, if there is one (as the kernel
    /// records it, not as anything in a directory says).
    public static func mountedVolume(at mountPoint: String) -> String? {
        kmsfsMounts().last { $0.mountPoint == mountPoint }?.source
    }

    private static func kmsfsMounts() -> [(mountPoint: String, source: String, ownerUID: uid_t?)] {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2 else { return nil }
            let fields = halves[0].split(separator: " "), tail = halves[1].split(separator: " ")
            guard fields.count >= 5, tail.count >= 2, tail[0] == "fuse.kmsfs" else { return nil }
            // FUSE's super options carry user_id=, the uid of whoever made the mount.
            let owner = tail.count >= 3 ? tail[2].split(separator: ",").first { $0.hasPrefix("user_id=") }.flatMap { uid_t($0.dropFirst(8)) } : nil
            return (unescape(String(fields[4])), unescape(String(tail[1])), owner)
        }
    }

    /// The pid of the process holding a flock on the file (device, inode), from /proc/locks.
    static func lockHolderPID(_ identity: (device: UInt64, inode: UInt64)) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/locks", encoding: .utf8) else { return nil }
        let major = (identity.device >> 8) & 0xfff | (identity.device >> 32) & ~0xfff
        let minor = identity.device & 0xff | (identity.device >> 12) & ~0xff
        for line in text.split(separator: "\n") {
            // 1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF
            let fields = line.split(separator: " ")
            guard fields.count >= 6, fields[1] == "FLOCK" else { continue }
            let place = fields[5].split(separator: ":")
            guard place.count == 3, UInt64(place[0], radix: 16) == major, UInt64(place[1], radix: 16) == minor,
                  UInt64(place[2]) == identity.inode else { continue }
            return Int(fields[4])
        }
        return nil
    }

    /// mountinfo escapes space, tab, newline and backslash as octal.
    static func unescape(_ field: String) -> String {
        var bytes: [UInt8] = [], utf8 = Array(field.utf8), index = 0
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "\\"), index + 3 < utf8.count, let value = UInt8(String(decoding: utf8[index + 1...index + 3], as: UTF8.self), radix: 8) {
                bytes.append(value)
                index += 4
            } else {
                bytes.append(utf8[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
