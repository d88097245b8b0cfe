import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Open directory streams, by the handle number given to the kernel.
final class DirectoryHandles: Sendable {
    /// `@unchecked Sendable`: a stream is used by one request at a time (the kernel serializes
    /// readdir on one handle); the table's lock hands it out.
    struct Stream: @unchecked Sendable {
        let directory: OpaquePointer
    }

    private let streams = Mutex<(next: UInt64, open: [UInt64: Stream])>((1, [:]))

    func open(fd: Int32) throws -> UInt64 {
        let directoryFD = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directoryFD >= 0 else { throw FuseError(errno) }
        guard let directory = fdopendir(directoryFD) else {
            let error = errno
            Glibc.close(directoryFD)
            throw FuseError(error)
        }
        return streams.withLock { table in
            let handle = table.next
            table.next += 1
            table.open[handle] = Stream(directory: directory)
            return handle
        }
    }

    func stream(_ handle: UInt64) -> Stream? { streams.withLock { $0.open[handle] } }

    func close(_ handle: UInt64) {
        if let stream = streams.withLock({ $0.open.removeValue(forKey: handle) }) { closedir(stream.directory) }
    }
}
