import CFuse3
import CLinux
import Foundation
import KMSFSFormat
import KMSClient
import KMSFSVolume
#if canImport(Glibc)
import Glibc
#endif

/// The mounted filesystem's state, reached from every callback through the session's userdata.
///
/// This slice serves the tree read-only: lookup, getattr (plaintext sizes from ciphertext sizes,
/// no key needed), readdir, statfs, and reading files (keys through the data-key cache).
final class Filesystem: Sendable {
    let inodes: InodeTable
    let geometry: ChunkGeometry
    let keys: FileKeys
    let files = OpenFiles()
    /// Names at the top of the backing directory that are kmsfs's own, never shown.
    static let hiddenRootNames: Set<String> = [VolumeConfiguration.fileName]

    init(cipherDirectory: String, configuration: VolumeConfiguration) throws {
        let rootFD = open(cipherDirectory, CLinux_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else { throw FuseError(errno) }
        inodes = try InodeTable(rootFD: rootFD)
        geometry = ChunkGeometry(plainChunkSize: configuration.chunkSize)
        keys = FileKeys(volumeID: configuration.volumeID, chunkSize: configuration.chunkSize,
                        client: try configuration.makeKeyClient(), pool: nil, cache: DataKeyCache())
    }

    /// Opens inode `id`'s backing file for reading and unwraps its key.
    func openFile(_ id: UInt64, flags: Int32) throws -> UInt64 {
        guard let pathFD = inodes.fd(id) else { throw FuseError(ENOENT) }
        // Write access comes with the write path; until then the mount is read-only for files.
        guard flags & O_ACCMODE == O_RDONLY else { throw FuseError(EROFS) }
        let fd = open("/proc/self/fd/\(pathFD)", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FuseError(errno) }
        do {
            return files.add(OpenFiles.Entry(fd: fd, file: try BackingFile.open(fd: fd, keys: keys)))
        } catch let error as KMSClientError {
            close(fd)
            throw FuseError(error.errno)
        } catch let error as StorageError {
            close(fd)
            throw FuseError(error.errno)
        } catch {
            close(fd)
            throw FuseError(EIO)
        }
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
