import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The kernel reads ahead on a FUSE mount 128 KiB at a time by default, so a sequential read
/// reaches kmsfs as 128 KiB requests: 8 chunks, too few to spread over the cores. A larger
/// window (the mount's backing-device `read_ahead_kb`, which only root may set) lets requests
/// grow to max_read/max_write (1 MiB): 512 MiB cold reads went from 345 to 1 200 MB/s here.
enum Readahead {
    static let kibibytes = 4096

    /// Sets the read-ahead window of the FUSE mount on `mountPoint`. Best effort: without the
    /// privilege the default stays, and the log says so.
    static func raise(mountPoint: String, logger: Logger) {
        // The mount's device from /proc/self/mountinfo: a stat of the mount point would ask this
        // very daemon, which does not serve yet.
        guard let table = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return }
        let escaped = mountPoint.replacingOccurrences(of: "\\", with: "\\134").replacingOccurrences(of: " ", with: "\\040")
            .replacingOccurrences(of: "\t", with: "\\011").replacingOccurrences(of: "\n", with: "\\012")
        var device: String?
        for line in table.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count > 4 && fields[4] == escaped { device = String(fields[2]) }
        }
        guard let device else { return }
        let path = "/sys/class/bdi/\(device)/read_ahead_kb"
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        let value = Array("\(kibibytes)\n".utf8)
        guard fd >= 0, write(fd, value, value.count) == value.count else {
            logger.info("read-ahead stays at the kernel's default (cannot write \(path): \(String(cString: strerror(errno))))")
            if fd >= 0 { close(fd) }
            return
        }
        close(fd)
        logger.info("read-ahead window \(kibibytes) KiB (\(path))")
    }
}
