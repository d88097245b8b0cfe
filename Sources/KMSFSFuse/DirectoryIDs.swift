import CLinux
import KMSFSFormat
import KMSFSVolume
import KMSFSCrypto
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Directory IDs (docs/FORMAT.md, "Encrypted names") of the directories the kernel knows, read
/// from their backing attribute once and kept until the kernel forgets the inode.
final class DirectoryIDCache: Sendable {
    private let ids = Mutex<[UInt64: [UInt8]]>([:])

    /// The ID of directory inode `id`, whose O_PATH descriptor is `fd`.
    /// - Throws: EIO for a directory without a valid ID (made behind kmsfs's back, or tampered).
    func id(of id: UInt64, fd: Int32) throws -> [UInt8] {
        if id == InodeTable.rootID { return NameCipher.rootDirectoryID }
        if let known = ids.withLock({ $0[id] }) { return known }
        var value = [UInt8](repeating: 0, count: DirectoryID.byteCount + 1)
        // Through /proc: an O_PATH descriptor takes no fgetxattr.
        let count = getxattr("/proc/self/fd/\(fd)", DirectoryID.attributeName, &value, value.count)
        guard count == DirectoryID.byteCount else { throw FuseError(EIO) }
        let found = Array(value.prefix(count))
        ids.withLock { $0[id] = found }
        return found
    }

    func forget(_ id: UInt64) { _ = ids.withLock { $0.removeValue(forKey: id) } }
}

extension DirectoryID {
    /// Makes the directory `entry` with a new ID: under a temporary `kmsfs.tmp.` name, given its
    /// attribute and mode there, then renamed into place — no directory is ever visible without
    /// its ID, and a crash leaves at most a hidden temporary.
    static func make(_ entry: BackingTree.Entry, mode: mode_t) throws {
        let temporary = try SideFile.temporaryName()
        // 0700 first: the daemon must be able to open it and set the attribute whatever the mode.
        guard mkdirat(entry.directoryFD, temporary, 0o700) == 0 else { throw FuseError(errno) }
        do {
            let fd = openat(entry.directoryFD, temporary, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { throw FuseError(errno) }
            defer { close(fd) }
            let id = try SecureRandom.bytes(count: byteCount)
            guard fsetxattr(fd, attributeName, id, id.count, 0) == 0 else { throw FuseError(errno) }
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw FuseError(errno) }
            // Keep the set-group-ID bit a setgid parent gave it, as mkdir(2) does.
            guard fchmod(fd, (mode & 0o7777) | (info.st_mode & S_ISGID)) == 0 else { throw FuseError(errno) }
            guard CLinux_renameat2(entry.directoryFD, temporary, entry.directoryFD, entry.name.cString, 1) == 0 else { throw FuseError(errno) }
        } catch {
            unlinkat(entry.directoryFD, temporary, AT_REMOVEDIR)
            throw error
        }
    }
}

/// A long name's side file (docs/FORMAT.md): the encoded name, beside the entry whose name is
/// its hash.
enum SideFile {
    /// Written under a temporary name and renamed over `name`: whatever is there (a file
    /// hard-linked elsewhere, a FIFO) is replaced, never written through or waited on.
    static func write(_ content: [UInt8], as name: FileName, in directoryFD: Int32) throws {
        let temporary = try temporaryName()
        let fd = openat(directoryFD, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FuseError(errno) }
        let written = Glibc.write(fd, content, content.count) == content.count
        close(fd)
        guard written, renameat(directoryFD, temporary, directoryFD, name.cString) == 0 else {
            let error = written ? errno : EIO
            unlinkat(directoryFD, temporary, 0)
            throw FuseError(error)
        }
    }

    /// Nil for a missing, unreadable or oversized side file (the entry is then not listed).
    static func read(_ name: FileName, in directoryFD: Int32) -> [UInt8]? {
        let fd = openat(directoryFD, name.cString, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let count = Glibc.read(fd, &buffer, buffer.count)
        guard count > 0, count < buffer.count else { return nil }
        return Array(buffer.prefix(count))
    }

    static func remove(_ name: FileName, in directoryFD: Int32) { unlinkat(directoryFD, name.cString, 0) }

    static let temporaryPrefix = "kmsfs.tmp."

    /// A name for something being made (hidden: no encoded name has a '.').
    static func temporaryName() throws -> String {
        temporaryPrefix + (try SecureRandom.bytes(count: 12)).map { String(format: "%02x", $0) }.joined()
    }

    /// Removes from directory `directory` (in `parentFD`) the side files whose entry is gone
    /// and empty temporaries; true if nothing else that is kmsfs's own remains in the way.
    /// Names that are not kmsfs's own (planted, another volume's) are left, and the directory
    /// stays ENOTEMPTY: kmsfs removes nothing it did not make.
    static func clearLeftovers(in parentFD: Int32, directory: FileName) -> Bool {
        let fd = openat(parentFD, directory.cString, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0, let stream = fdopendir(fd) else {
            if fd >= 0 { close(fd) }
            return false
        }
        defer { closedir(stream) }
        var names: [[UInt8]] = []
        while let record = readdir(stream) { names.append(FileName(DirectoryEntryName.pointer(record)).bytes) }
        let present = Set(names)
        for name in names where name.starts(with: BackingTree.ownPrefix) {
            if name.starts(with: NameCipher.longPrefix), name.count > NameCipher.sideFileSuffix.count,
               name.suffix(NameCipher.sideFileSuffix.count).elementsEqual(NameCipher.sideFileSuffix),
               !present.contains(Array(name.dropLast(NameCipher.sideFileSuffix.count))) {
                unlinkat(fd, FileName(bytes: name).cString, 0)
            } else if name.starts(with: Array(temporaryPrefix.utf8)) {
                if unlinkat(fd, FileName(bytes: name).cString, AT_REMOVEDIR) != 0 { unlinkat(fd, FileName(bytes: name).cString, 0) }
            }
        }
        return true
    }
}
