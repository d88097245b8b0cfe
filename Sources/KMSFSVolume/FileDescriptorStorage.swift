import CLinux
import Foundation
import KMSFSFormat
#if canImport(Glibc)
import Glibc
#endif

/// A backing file's bytes through its file descriptor, for ``EncryptedFile``.
///
/// Positional I/O only (pread/pwrite), so several threads may use one descriptor. `EINTR` is
/// retried; other failures throw ``POSIXErrorCode``-carrying ``StorageError`` so that ENOSPC reaches
/// the writer as ENOSPC.
public struct FileDescriptorStorage: CipherStorage, Sendable {
    public let fd: Int32

    public init(fd: Int32) { self.fd = fd }

    public func size() throws -> Int64 {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw StorageError(errno: errno, operation: "fstat") }
        return Int64(info.st_size)
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw StorageError(errno: errno, operation: "pread") }
            if n == 0 { break }
            done += n
        }
        return done
    }

    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw StorageError(errno: n < 0 ? errno : EIO, operation: "pwrite") }
            done += n
        }
    }

    public func truncate(to size: Int64) throws {
        while ftruncate(fd, off_t(size)) != 0 {
            guard errno == EINTR else { throw StorageError(errno: errno, operation: "ftruncate") }
        }
    }

    /// fallocate(FALLOC_FL_KEEP_SIZE); filesystems without fallocate are written without it.
    public func reserve(at offset: Int64, count: Int64) throws {
        guard count > 0 else { return }
        while CLinux_fallocate(fd, CLinux_FALLOC_FL_KEEP_SIZE, off_t(offset), off_t(count)) != 0 {
            if errno == EINTR { continue }
            if errno == EOPNOTSUPP || errno == ENOSYS { return }
            throw StorageError(errno: errno, operation: "fallocate")
        }
    }
}

/// A system call failure on a backing file, with its errno (passed through to FUSE as is).
public struct StorageError: Error, Equatable, CustomStringConvertible {
    public let errno: Int32
    public let operation: String
    public var description: String { "\(operation): \(String(cString: strerror(errno)))" }
}
