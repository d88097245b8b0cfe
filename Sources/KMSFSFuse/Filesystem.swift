import CFuse3
import CLinux
import Foundation
import KMSFSFormat
import KMSClient
import KMSFSVolume
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The mounted filesystem's state, reached from every callback through the session's userdata.
///
/// Metadata comes straight from the backing directory (plaintext sizes from ciphertext sizes,
/// no key); contents go through ``EncryptedFile`` under each inode's ``InodeLock``; keys come
/// through the data-key cache (existing files) or the key pool (new files under the default key).
final class Filesystem: Sendable {
    let inodes: InodeTable
    /// Every name-taking call on the backing directory goes through it.
    let tree: BackingTree
    let geometry: ChunkGeometry
    var keys: FileKeys { volume.keys }
    let files = OpenFiles()
    let directoryKeys = DirectoryKeyCache()
    /// Whether to ask for the kernel's writeback cache (`-o no_writeback_cache` turns it off).
    let wantsWritebackCache: Bool
    /// Whether the kernel granted it (set once, in FUSE's init, before any file is opened).
    let writebackCache = Atomic<Bool>(false)
    /// The open volume: its lock, verified configuration and key-service stack.
    let volume: Volume
    /// What gaps in growing files are made of (the volume's choice, once verified).
    var holes: HolePolicy { volume.holes }
    /// Whether the daemon runs as root, and so gives every node it creates to its creator.
    let runsAsRoot = geteuid() == 0
    /// Where the volume is mounted (for tuning the mount's read-ahead once FUSE's init is done).
    let mountPoint: String
    var defaultKeyID: String { volume.configuration.defaultKeyID }
    var configuration: VolumeConfiguration { volume.configuration }
    var cipherDirectory: String { volume.cipherDirectory }
    /// Integrity failures and key-service trouble go here (names inodes and chunks, never data).
    let logger = Logger(label: "kmsfs")
    /// The backing root's identity, where the walk up for a directory's default key stops.
    let rootIdentity: (device: UInt64, inode: UInt64)
    /// `descriptors`: the daemon's descriptor limit, which the inode table is kept within
    /// (``InodeEviction``); nil for no limit.
    init(volume: Volume, mountPoint: String, writebackCache: Bool = true, descriptors: Int? = nil) throws {
        wantsWritebackCache = writebackCache
        self.mountPoint = mountPoint
        self.volume = volume
        let rootFD = open(volume.cipherDirectory, CLinux_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else { throw FuseError(errno) }
        inodes = try InodeTable(rootFD: rootFD)
        tree = BackingTree(inodes: inodes, eviction: descriptors.map { [inodes] in InodeEviction(inodes: inodes, descriptors: $0, logger: Logger(label: "kmsfs")) },
                           names: volume.names)
        var rootInfo = stat()
        guard fstat(rootFD, &rootInfo) == 0 else { throw FuseError(errno) }
        rootIdentity = (UInt64(rootInfo.st_dev), UInt64(rootInfo.st_ino))
        geometry = ChunkGeometry(plainChunkSize: volume.configuration.chunkSize)
    }

    /// The errno for a failure below the filesystem: the one place errors become errnos.
    /// Whatever says "these bytes cannot be trusted" (format, key attribute) is EIO.
    static func errorNumber(for error: any Error) -> Int32 {
        switch error {
        case let error as FuseError: return error.errno
        case let error as StorageError: return error.errno
        case let error as KMSClientError: return error.errno
        case FormatError.fileTooLarge: return EFBIG
        case FileKeyError.bucketKeyed: return EOPNOTSUPP
        case is FormatError, is FileKeyError:
            MountMetrics.integrityFailures.increment()
            return EIO
        default: return EIO
        }
    }

    /// Opens inode `id`'s backing file and unwraps its key. Write access opens the backing file
    /// read-write (partial chunks are read back to be re-sealed); O_TRUNC empties it.
    func openFile(_ id: UInt64, flags: Int32, requester: Requester? = nil) throws -> UInt64 {
        guard let pathFD = inodes.fd(id), let lock = inodes.lock(id) else { throw FuseError(ENOENT) }
        // O_TRUNC empties the file whatever the access mode (the kernel counts on it, and has
        // checked write permission for it).
        let writing = flags & O_ACCMODE != O_RDONLY || flags & O_TRUNC != 0
        let fd = open("/proc/self/fd/\(pathFD)", (writing ? O_RDWR : O_RDONLY) | O_CLOEXEC)
        guard fd >= 0 else { throw FuseError(errno) }
        do {
            let file = try BackingFile.open(fd: fd, keys: keys, holes: holes)
            if writing && flags & O_TRUNC != 0 {
                try lock.withWholeFile { try file.truncate(to: 0) }
                if let requester, try SetIDBits.drop(fd, for: requester) { KernelChannel.invalidateAttributes(of: id) }
            } else {
                // The kernel sends no read for a file it believes empty: an impossible size, or
                // a file cut to its header, fails here rather than reading as an empty file.
                // (A non-empty file's end is authenticated by every read that reaches it; a
                // crash-torn final chunk then fails only those reads, not every open.)
                try lock.withRange(InodeLock.Range(first: 0, last: .max), exclusive: false) {
                    if try file.plainSize() == 0 { try file.verifyEnd() }
                }
            }
            return files.add(OpenFiles.Entry(fd: fd, file: file, inode: id, lock: lock, append: appends(flags)))
        } catch {
            close(fd)
            logFailure(error, inode: id, offset: 0, length: 0)
            throw FuseError(Self.errorNumber(for: error))
        }
    }

    /// Creates `name` in `parent` as a new encrypted file under the directory's default key,
    /// owned by `requester` (see ``owner(for:parentFD:)``).
    func createFile(parent: UInt64, name: FileName, mode: mode_t, flags: Int32, requester: Requester) throws -> (UInt64, stat, UInt64) {
        let entry = try tree.entry(name, in: parent, for: .create)
        let created: (fd: Int32, file: EncryptedFile<FileDescriptorStorage>)
        do {
            try volume.requireVerified()
            let keyID = try directoryKeys.resolve(parent) { try directoryKey(entry.directoryFD) }.keyID
            created = try tree.createFile(entry, mode: mode, owner: owner(for: requester, parentFD: entry.directoryFD),
                                          keys: keys, keyID: keyID, holes: holes)
        } catch {
            throw FuseError(Self.errorNumber(for: error))
        }
        let id: UInt64, info: stat
        do { (id, info) = try tree.lookup(name, in: parent) } catch {
            close(created.fd)  // renamed away before it could be looked up
            throw error
        }
        guard let lock = inodes.lock(id) else { close(created.fd); throw FuseError(ENOENT) }
        let handle = files.add(OpenFiles.Entry(fd: created.fd, file: created.file, inode: id, lock: lock, append: appends(flags)))
        return (id, plaintextAttributes(info, id: id), handle)
    }

    /// Whether writes through a handle opened with `flags` go to the end whatever their offset:
    /// O_APPEND, unless the writeback cache is on (the kernel then sends the end's offset itself,
    /// from its own idea of the size, which is ahead of the backing file's until written back).
    func appends(_ flags: Int32) -> Bool {
        flags & O_APPEND != 0 && !writebackCache.load(ordering: .relaxed)
    }

    /// Sets the plaintext size of inode `id`, through `handle` if the caller has one open.
    func truncate(_ id: UInt64, to size: Int64, handle: UInt64?) throws {
        if let handle, let entry = files.entry(handle) {
            return try entry.lock.withWholeFile { try entry.file.truncate(to: size) }
        }
        let temporary = try openFile(id, flags: O_WRONLY)
        defer { files.remove(temporary) }
        let entry = files.entry(temporary)!
        try entry.lock.withWholeFile { try entry.file.truncate(to: size) }
    }

    /// The key new files in the backing directory `directoryFD` get (see ``DirectoryKey``).
    func directoryKey(_ directoryFD: Int32) throws -> (keyID: String, source: DirectoryKey.Source) {
        try DirectoryKey.resolve(directoryFD: directoryFD, root: rootIdentity, rootPath: cipherDirectory, volumeDefault: defaultKeyID,
                                 allowed: configuration.allowedKeyIDs) { ignored in
            logger.warning("ignored \(DirectoryKey.attributeName)=\(ignored) in the backing directory: not a key this volume's configuration allows")
        }
    }

    /// The plaintext view of a backing file's stat: regular files report their plaintext size.
    func plaintextAttributes(_ info: stat, id: UInt64) -> stat {
        var view = info
        view.st_ino = UInt(id)
        if (info.st_mode & S_IFMT) == S_IFREG {
            view.st_size = Int(clamping: (try? geometry.plainSize(forCipherSize: Int64(info.st_size))) ?? 0)
        } else if (info.st_mode & S_IFMT) == S_IFLNK && tree.names != nil, let fd = inodes.fd(id) {
            // A link's size is its target's length (some readers size their buffer by it).
            view.st_size = ((try? tree.symlinkTarget(fd))?.count ?? 1) - 1
        }
        return view
    }

    func attributes(of id: UInt64) throws -> stat {
        guard let fd = inodes.fd(id) else { throw FuseError(ENOENT) }
        var info = stat()
        guard fstatat(fd, "", &info, CLinux_AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 else { throw FuseError(errno) }
        return plaintextAttributes(info, id: id)
    }
}
