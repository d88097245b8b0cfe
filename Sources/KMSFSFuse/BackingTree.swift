import CLinux
import Foundation
import KMSFSFormat
import KMSFSVolume
#if canImport(Glibc)
import Glibc
#endif

/// The backing directory's names, as the FUSE frontend reaches them: every system call that
/// takes a name in the backing directory goes through here, with the name the kernel sent.
///
/// Why one layer: what a name is on disk is decided here and nowhere else — today the same
/// bytes, with kmsfs's own files at the top hidden; with encrypted names (docs/FORMAT.md, later)
/// the mapping both ways. Operations ask for a node by its parent inode and plaintext name and
/// never build a backing name themselves; listings turn backing names into plaintext ones here.
/// Failures are ``FuseError``s carrying the errno.
final class BackingTree: Sendable {
    /// What a request does with a name, which decides the errno for a name the mount hides: a
    /// lookup does not find it, a create finds it taken, a change is not permitted.
    enum Purpose {
        case find, create, change

        var hiddenErrno: Int32 {
            switch self {
            case .find: return ENOENT
            case .create: return EEXIST
            case .change: return EPERM
            }
        }
    }

    /// Names at the top of the backing directory that are kmsfs's own, never shown.
    static let hiddenRootNames: Set<FileName> = Set(VolumeConfiguration.reservedNames.map(FileName.init))

    let inodes: InodeTable
    let eviction: InodeEviction?

    init(inodes: InodeTable, eviction: InodeEviction? = nil) {
        self.inodes = inodes
        self.eviction = eviction
    }

    /// A name in a directory of the backing tree: the directory's O_PATH descriptor and the
    /// name as stored.
    struct Entry {
        let directoryFD: Int32
        let name: FileName
    }

    /// Where `name` of directory inode `parent` is in the backing directory.
    /// - Throws: ENOENT for a parent the kernel has forgotten; the purpose's errno for a hidden name.
    func entry(_ name: FileName, in parent: UInt64, for purpose: Purpose) throws -> Entry {
        guard let directoryFD = inodes.fd(parent) else { throw FuseError(ENOENT) }
        if parent == InodeTable.rootID && Self.hiddenRootNames.contains(name) { throw FuseError(purpose.hiddenErrno) }
        return Entry(directoryFD: directoryFD, name: name)
    }

    /// The plaintext name of a directory entry read from the backing directory, or nil for one
    /// the mount does not show.
    func listedName(_ backingName: FileName, inRoot: Bool) -> FileName? {
        inRoot && Self.hiddenRootNames.contains(backingName) ? nil : backingName
    }

    /// Finds or adds the inode of `name` in `parent`, counting one kernel reference.
    func lookup(_ name: FileName, in parent: UInt64) throws -> (UInt64, stat) {
        let entry = try entry(name, in: parent, for: .find)
        let fd = openat(entry.directoryFD, entry.name.cString, CLinux_O_PATH | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw FuseError(errno) }
        let adopted = try inodes.adopt(fd, parent: parent, name: name)
        eviction?.check()
        return adopted
    }

    func makeDirectory(_ entry: Entry, mode: mode_t) throws {
        guard mkdirat(entry.directoryFD, entry.name.cString, mode) == 0 else { throw FuseError(errno) }
    }

    /// A FIFO, socket or device node (they have no contents to encrypt: they live as themselves).
    func makeNode(_ entry: Entry, mode: mode_t, device: dev_t) throws {
        guard mknodat(entry.directoryFD, entry.name.cString, mode, device) == 0 else { throw FuseError(errno) }
    }

    func makeSymlink(_ entry: Entry, target: UnsafePointer<CChar>) throws {
        guard symlinkat(target, entry.directoryFD, entry.name.cString) == 0 else { throw FuseError(errno) }
    }

    /// A hard link to the node pinned by `fd` (it shares the inode, and so the key attribute).
    func link(_ fd: Int32, as entry: Entry) throws {
        guard linkat(AT_FDCWD, "/proc/self/fd/\(fd)", entry.directoryFD, entry.name.cString, AT_SYMLINK_FOLLOW) == 0 else { throw FuseError(errno) }
    }

    /// unlink (flags 0) or rmdir (AT_REMOVEDIR).
    func remove(_ entry: Entry, flags: Int32) throws {
        guard unlinkat(entry.directoryFD, entry.name.cString, flags) == 0 else { throw FuseError(errno) }
    }

    /// renameat2: RENAME_NOREPLACE and RENAME_EXCHANGE go straight through.
    func rename(_ source: Entry, to target: Entry, flags: UInt32) throws {
        guard CLinux_renameat2(source.directoryFD, source.name.cString, target.directoryFD, target.name.cString, flags) == 0 else { throw FuseError(errno) }
    }

    /// chown of a node just made, without following a symlink.
    func setOwner(_ entry: Entry, uid: uid_t, gid: gid_t) throws {
        guard fchownat(entry.directoryFD, entry.name.cString, uid, gid, AT_SYMLINK_NOFOLLOW) == 0 else { throw FuseError(errno) }
    }

    func setMode(_ entry: Entry, mode: mode_t) throws {
        guard fchmodat(entry.directoryFD, entry.name.cString, mode, 0) == 0 else { throw FuseError(errno) }
    }

    /// A new encrypted file at `entry` (``BackingFile/create(path:relativeTo:mode:owner:keys:keyID:holes:)``).
    func createFile(_ entry: Entry, mode: mode_t, owner: (uid: uid_t, gid: gid_t)?, keys: FileKeys, keyID: String,
                    holes: HolePolicy) throws -> (fd: Int32, file: EncryptedFile<FileDescriptorStorage>) {
        try BackingFile.create(path: entry.name.cString, relativeTo: entry.directoryFD, mode: mode, owner: owner, keys: keys, keyID: keyID, holes: holes)
    }
}
