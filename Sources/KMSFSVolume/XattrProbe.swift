import CLinux
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Whether a directory's filesystem keeps `user.` extended attributes: set, read back and remove
/// one on a scratch file. kmsfs refuses filesystems without them, because the wrapped data key of
/// every file lives in one.
enum XattrProbe {
    static func check(directory: String) throws {
        let path = (directory as NSString).appendingPathComponent(".kmsfs-xattr-probe-\(getpid())")
        guard FileManager.default.createFile(atPath: path, contents: Data()) else { throw VolumeError.io("cannot create a file in \(directory)") }
        defer { unlink(path) }
        let value: [UInt8] = Array("probe".utf8)
        guard setxattr(path, "user.kmsfs.probe", value, value.count, 0) == 0 else {
            throw VolumeError.noUserXattrs(directory, reason: String(cString: strerror(errno)))
        }
        var back = [UInt8](repeating: 0, count: 16)
        let count = getxattr(path, "user.kmsfs.probe", &back, back.count)
        guard count == value.count, Array(back[0..<count]) == value else {
            throw VolumeError.noUserXattrs(directory, reason: "the attribute did not read back")
        }
    }
}
