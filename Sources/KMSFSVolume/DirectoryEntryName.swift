#if canImport(Glibc)
import Glibc
#endif

/// The name in a record readdir(3) returned, read where it lies.
///
/// Not `entry.pointee.d_name`: that copies the whole 256-byte array, while a record is only as
/// long as its name (d_reclen). The copy reads past the record, and past the end of the mapping
/// when the record is the last one of the buffer on its page: the daemon crashed listing a
/// 5 000-file directory on tmpfs.
public enum DirectoryEntryName {
    private static let offset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!

    /// The NUL-terminated name, valid until the next readdir on the same stream.
    public static func pointer(_ entry: UnsafeMutablePointer<dirent>) -> UnsafePointer<CChar> {
        UnsafePointer(UnsafeRawPointer(entry).advanced(by: offset).assumingMemoryBound(to: CChar.self))
    }

    /// The name's bytes with their terminating NUL.
    public static func bytes(_ entry: UnsafeMutablePointer<dirent>) -> [CChar] {
        let name = pointer(entry)
        return Array(UnsafeBufferPointer(start: name, count: strlen(name) + 1))
    }
}
