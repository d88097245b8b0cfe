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
    /// Nil on a volume with plaintext names.
    let names: NameCipher?
    let directoryIDs: DirectoryIDCache

    init(inodes: InodeTable, eviction: InodeEviction? = nil, names: NameCipher? = nil) {
        self.inodes = inodes
        self.eviction = eviction
        self.names = names
        directoryIDs = DirectoryIDCache()
    }

    /// A name in a directory of the backing tree: the directory's O_PATH descriptor and the
    /// name as stored.
    struct Entry {
        /// The directory's inode, and its O_PATH descriptor.
        let parent: UInt64
        let directoryFD: Int32
        let name: FileName
        /// For a long encrypted name: the encoded name its side file holds.
        var sideFile: (name: FileName, content: [UInt8])?
    }

    /// Where `name` of directory inode `parent` is in the backing directory.
    /// - Throws: ENOENT for a parent the kernel has forgotten; the purpose's errno for a hidden name.
    func entry(_ name: FileName, in parent: UInt64, for purpose: Purpose) throws -> Entry {
        guard let directoryFD = inodes.fd(parent) else { throw FuseError(ENOENT) }
        guard let names else {
            if parent == InodeTable.rootID && Self.hiddenRootNames.contains(name) { throw FuseError(purpose.hiddenErrno) }
            return Entry(parent: parent, directoryFD: directoryFD, name: name)
        }
        let backing: NameCipher.BackingName
        do {
            backing = try names.encrypt(name.bytes, directoryID: try directoryIDs.id(of: parent, fd: directoryFD))
        } catch NameError.invalid {
            throw FuseError(name.bytes.count > NameCipher.maximumBackingLength ? ENAMETOOLONG : EINVAL)
        }
        switch backing {
        case let .short(encoded):
            return Entry(parent: parent, directoryFD: directoryFD, name: FileName(bytes: encoded))
        case let .long(hashed, encoded):
            return Entry(parent: parent, directoryFD: directoryFD, name: FileName(bytes: hashed),
                         sideFile: (FileName(bytes: hashed + NameCipher.sideFileSuffix), encoded))
        }
    }

    /// The plaintext name of a directory entry read from the backing directory, or nil for one
    /// the mount does not show: kmsfs's own files, and on a volume with encrypted names any name
    /// that does not open in this directory (edited, moved from another directory, planted).
    func listedName(_ backingName: FileName, in directory: UInt64, directoryFD: Int32) -> FileName? {
        guard let names else {
            return directory == InodeTable.rootID && Self.hiddenRootNames.contains(backingName) ? nil : backingName
        }
        if backingName.isDotOrDotDot { return backingName }
        let bytes = backingName.bytes
        let encoded: [UInt8]
        if NameCipher.isLongEntry(bytes) {
            // Only a name whose encoding is too long for an entry is stored this way: a planted
            // side file holding a short name's encoding would list that name twice.
            guard let content = SideFile.read(FileName(bytes: bytes + NameCipher.sideFileSuffix), in: directoryFD),
                  content.count > NameCipher.maximumBackingLength, NameCipher.hashedName(content) == bytes else { return nil }
            encoded = content
        } else if bytes.starts(with: Self.ownPrefix) {
            return nil
        } else {
            encoded = bytes
        }
        guard let id = try? directoryIDs.id(of: directory, fd: directoryFD),
              let plaintext = try? names.decrypt(encoded, directoryID: id) else { return nil }
        return FileName(bytes: plaintext)
    }

    /// Throws EIO for a directory whose names cannot be read (on a volume with encrypted names,
    /// one without its ID): an error, not an empty listing.
    func checkListable(_ directory: UInt64, directoryFD: Int32) throws {
        if names != nil { _ = try directoryIDs.id(of: directory, fd: directoryFD) }
    }

    /// Backing names that are kmsfs's own on a volume with encrypted names (no encoded name
    /// has a '.').
    static let ownPrefix = Array("kmsfs.".utf8)
    /// renameat2's RENAME_EXCHANGE.
    static let renameExchange: UInt32 = 2

    /// Finds or adds the inode of `name` in `parent`, counting one kernel reference.
    /// `backingName`: the entry's name in the backing directory when the caller has it (a
    /// listing), which spares encrypting `name` again.
    func lookup(_ name: FileName, in parent: UInt64, backingName: FileName? = nil) throws -> (UInt64, stat) {
        let entry = try backingName.map { stored in
            guard let directoryFD = inodes.fd(parent) else { throw FuseError(ENOENT) }
            return Entry(parent: parent, directoryFD: directoryFD, name: stored)
        } ?? entry(name, in: parent, for: .find)
        let fd = openat(entry.directoryFD, entry.name.cString, CLinux_O_PATH | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw FuseError(errno) }
        let adopted = try inodes.adopt(fd, parent: parent, name: name)
        eviction?.check()
        return adopted
    }

    func makeDirectory(_ entry: Entry, mode: mode_t) throws {
        guard names != nil else {
            guard mkdirat(entry.directoryFD, entry.name.cString, mode) == 0 else { throw FuseError(errno) }
            return
        }
        try withSideFile(entry) { try DirectoryID.make(entry, mode: mode) }
    }

    /// A FIFO, socket or device node (they have no contents to encrypt: they live as themselves).
    func makeNode(_ entry: Entry, mode: mode_t, device: dev_t) throws {
        try withSideFile(entry) { guard mknodat(entry.directoryFD, entry.name.cString, mode, device) == 0 else { throw FuseError(errno) } }
    }

    func makeSymlink(_ entry: Entry, target: UnsafePointer<CChar>) throws {
        var stored = FileName(target)
        if let names {
            do { stored = FileName(bytes: try names.encryptTarget(stored.bytes)) } catch { throw FuseError(ENAMETOOLONG) }
        }
        try withSideFile(entry) { guard symlinkat(stored.cString, entry.directoryFD, entry.name.cString) == 0 else { throw FuseError(errno) } }
    }

    /// The target of the symbolic link pinned by `fd` (NUL-terminated), decrypted on a volume
    /// with encrypted names.
    /// - Throws: EIO for a stored target that does not open (edited, or not kmsfs's).
    func symlinkTarget(_ fd: Int32) throws -> [CChar] {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlinkat(fd, "", &buffer, buffer.count - 1)
        guard count >= 0 else { throw FuseError(errno) }
        let stored = Array(buffer.prefix(count)).map { UInt8(bitPattern: $0) }
        guard let names else { return FileName(bytes: stored).cString }
        do { return FileName(bytes: try names.decryptTarget(stored)).cString } catch { throw FuseError(EIO) }
    }

    /// A hard link to the node pinned by `fd` (it shares the inode, and so the key attribute).
    func link(_ fd: Int32, as entry: Entry) throws {
        try withSideFile(entry) {
            guard linkat(AT_FDCWD, "/proc/self/fd/\(fd)", entry.directoryFD, entry.name.cString, AT_SYMLINK_FOLLOW) == 0 else { throw FuseError(errno) }
        }
    }

    /// unlink (flags 0) or rmdir (AT_REMOVEDIR).
    func remove(_ entry: Entry, flags: Int32) throws {
        if unlinkat(entry.directoryFD, entry.name.cString, flags) != 0 {
            let error = errno
            // A directory that shows empty may still hold kmsfs's leftovers (a side file whose
            // entry a crash removed, a temporary directory): cleared, then removed.
            guard error == ENOTEMPTY, names != nil, flags == AT_REMOVEDIR,
                  SideFile.clearLeftovers(in: entry.directoryFD, directory: entry.name) else { throw FuseError(error) }
            guard unlinkat(entry.directoryFD, entry.name.cString, flags) == 0 else { throw FuseError(errno) }
        }
        if let side = entry.sideFile { SideFile.remove(side.name, in: entry.directoryFD) }
    }

    /// renameat2: RENAME_NOREPLACE and RENAME_EXCHANGE go straight through.
    func rename(_ source: Entry, to target: Entry, flags: UInt32) throws {
        let exchange = flags & Self.renameExchange != 0
        try withSideFile(exchange ? nil : target) {
            guard CLinux_renameat2(source.directoryFD, source.name.cString, target.directoryFD, target.name.cString, flags) == 0 else { throw FuseError(errno) }
        }
        // The source's name is gone (unless it was the target's, or the two were exchanged:
        // names stay where they are, only the nodes move).
        if !exchange, let side = source.sideFile, source.parent != target.parent || source.name != target.name {
            SideFile.remove(side.name, in: source.directoryFD)
        }
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
        var created: (fd: Int32, file: EncryptedFile<FileDescriptorStorage>)?
        try withSideFile(entry) {
            created = try BackingFile.create(path: entry.name.cString, relativeTo: entry.directoryFD, mode: mode, owner: owner, keys: keys,
                                             keyID: keyID, holes: holes)
        }
        return created!
    }

    /// Runs `make`, which gives `entry` its node, with a long name's side file written first
    /// (a listing never finds the node without it); the side file goes again if `make` fails
    /// and nothing has the name.
    private func withSideFile(_ entry: Entry?, _ make: () throws -> Void) throws {
        guard let entry, let side = entry.sideFile else { return try make() }
        try SideFile.write(side.content, as: side.name, in: entry.directoryFD)
        do { try make() } catch {
            var info = stat()
            if fstatat(entry.directoryFD, entry.name.cString, &info, AT_SYMLINK_NOFOLLOW) != 0 { SideFile.remove(side.name, in: entry.directoryFD) }
            throw error
        }
    }

    /// The kernel forgot inode `id`.
    func forget(_ id: UInt64) { directoryIDs.forget(id) }
}
