import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Files written whole, with their final mode from the first byte: secrets, and files a reader
/// must never see half of. Created under a temporary name with `open(O_CREAT | O_EXCL, mode)`
/// (never a wider mode chmod'ed later, which leaves a window in which anyone may open the
/// file), written, fsync'ed and renamed over the target.
enum AtomicFile {
    static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o600) throws {
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw VolumeError.io("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var failure: String?
        var done = 0
        while done < bytes.count && failure == nil {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { failure = String(cString: strerror(errno)) } else { done += n }
        }
        if failure == nil && fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
        close(fd)
        if failure == nil && rename(temporary, path) != 0 { failure = String(cString: strerror(errno)) }
        if let failure {
            unlink(temporary)
            throw VolumeError.io("cannot write \(path): \(failure)")
        }
        // The rename is durable before anything that relies on it (a root.key shredded after
        // its record is written).
        let directory = Glibc.open((path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent,
                                   O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }
}
