import CFuse3
import CLinux
import Foundation
import KMSFSFormat
import KMSClient
import KMSFSVolume
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The mounted filesystem's state, reached from every callback through the session's userdata.
///
/// Served so far: lookup, getattr (plaintext sizes from ciphertext sizes, no key), readdir,
/// statfs, create/open/read/write/truncate (keys through the data-key cache, per-inode locks),
/// mkdir/rmdir/unlink/rename, chmod/chown/utimens, fsync. Links, symlinks and xattrs come next.
final class Filesystem: Sendable {
    let inodes: InodeTable
    let geometry: ChunkGeometry
    let keys: FileKeys
    let files = OpenFiles()
    let defaultKeyID: String
    /// Integrity failures and key-service trouble go here (names inodes and chunks, never data).
    let logger = Logger(label: "kmsfs")
    /// Striped per-inode locks: operations on one file are serialized, different files run in
    /// parallel. Taken after the inode table's lock, never while answering the kernel.
    private let inodeLocks = (0..<64).map { _ in NSLock() }
    /// Names at the top of the backing directory that are kmsfs's own, never shown.
    static let hiddenRootNames: Set<String> = [VolumeConfiguration.fileName]

    init(cipherDirectory: String, configuration: VolumeConfiguration) throws {
        let rootFD = open(cipherDirectory, CLinux_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else { throw FuseError(errno) }
        inodes = try InodeTable(rootFD: rootFD)
        geometry = ChunkGeometry(plainChunkSize: configuration.chunkSize)
        let client = try configuration.makeKeyClient()
        // A remote service gets a key pool, so that creating a file does not wait for a round
        // trip; the embedded one answers in microseconds and a pool only competes for the cores
        // (docs/BENCHMARKS.md, KMS client).
        var pool: KeyPool?
        if case .remote = configuration.keyService {
            let volumeID = configuration.volumeID
            pool = KeyPool(client: client, keyID: configuration.defaultKeyID, size: 64, lowWater: 16, concurrency: 2) {
                FileKeys.context(volumeID: volumeID, fileID: $0)
            }
        }
        keys = FileKeys(volumeID: configuration.volumeID, chunkSize: configuration.chunkSize, client: client, pool: pool, cache: DataKeyCache())
        defaultKeyID = configuration.defaultKeyID
    }

    func withInodeLock<R>(_ id: UInt64, _ body: () throws -> R) rethrows -> R {
        let lock = inodeLocks[Int(id % UInt64(inodeLocks.count))]
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// The errno for a failure below the filesystem.
    static func errorNumber(for error: any Error) -> Int32 {
        switch error {
        case let error as FuseError: return error.errno
        case let error as StorageError: return error.errno
        case let error as KMSClientError: return error.errno
        default: return EIO
        }
    }

    /// Opens inode `id`'s backing file and unwraps its key. Write access opens the backing file
    /// read-write (partial chunks are read back to be re-sealed); O_TRUNC empties it.
    func openFile(_ id: UInt64, flags: Int32) throws -> UInt64 {
        guard let pathFD = inodes.fd(id) else { throw FuseError(ENOENT) }
        let writing = flags & O_ACCMODE != O_RDONLY
        let fd = open("/proc/self/fd/\(pathFD)", (writing ? O_RDWR : O_RDONLY) | O_CLOEXEC)
        guard fd >= 0 else { throw FuseError(errno) }
        do {
            let file = try BackingFile.open(fd: fd, keys: keys)
            if writing && flags & O_TRUNC != 0 { try withInodeLock(id) { try file.truncate(to: 0) } }
            return files.add(OpenFiles.Entry(fd: fd, file: file, inode: id, append: flags & O_APPEND != 0))
        } catch {
            close(fd)
            throw FuseError(Self.errorNumber(for: error))
        }
    }

    /// Creates `name` in `parent` as a new encrypted file under the default key.
    func createFile(parent: UInt64, name: String, mode: mode_t, flags: Int32) throws -> (UInt64, stat, UInt64) {
        guard let parentFD = inodes.fd(parent) else { throw FuseError(ENOENT) }
        if isHidden(parent: parent, name: name) { throw FuseError(EEXIST) }
        let created: (fd: Int32, file: EncryptedFile<FileDescriptorStorage>)
        do {
            created = try BackingFile.create(path: "/proc/self/fd/\(parentFD)/\(name)", mode: mode, keys: keys, keyID: defaultKeyID)
        } catch {
            throw FuseError(Self.errorNumber(for: error))
        }
        let (id, info) = try inodes.lookup(parent: parent, name: name)
        let handle = files.add(OpenFiles.Entry(fd: created.fd, file: created.file, inode: id, append: flags & O_APPEND != 0))
        return (id, plaintextAttributes(info, id: id), handle)
    }

    /// Sets the plaintext size of inode `id`, through `handle` if the caller has one open.
    func truncate(_ id: UInt64, to size: Int64, handle: UInt64?) throws {
        if let handle, let entry = files.entry(handle) {
            return try withInodeLock(id) { try entry.file.truncate(to: size) }
        }
        let temporary = try openFile(id, flags: O_WRONLY)
        defer { files.remove(temporary) }
        try withInodeLock(id) { try files.entry(temporary)!.file.truncate(to: size) }
    }

    /// The plaintext view of a backing file's stat: regular files report their plaintext size.
    func plaintextAttributes(_ info: stat, id: UInt64) -> stat {
        var view = info
        view.st_ino = UInt(id)
        if (info.st_mode & S_IFMT) == S_IFREG {
            view.st_size = Int(clamping: (try? geometry.plainSize(forCipherSize: Int64(info.st_size))) ?? 0)
        }
        return view
    }

    func attributes(of id: UInt64) throws -> stat {
        guard let fd = inodes.fd(id) else { throw FuseError(ENOENT) }
        var info = stat()
        guard fstatat(fd, "", &info, CLinux_AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 else { throw FuseError(errno) }
        return plaintextAttributes(info, id: id)
    }

    func isHidden(parent: UInt64, name: String) -> Bool {
        parent == InodeTable.rootID && Self.hiddenRootNames.contains(name)
    }
}
