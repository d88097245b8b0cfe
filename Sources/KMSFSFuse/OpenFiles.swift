import Foundation
import KMSFSFormat
import KMSFSVolume
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Open regular files, by the handle number given to the kernel.
final class OpenFiles: Sendable {
    /// One open backing file and its cipher, with its inode's content lock (a write re-seals
    /// chunks a concurrent read may be opening: see ``InodeLock``).
    struct Entry: Sendable {
        let fd: Int32
        let file: EncryptedFile<FileDescriptorStorage>
        let inode: UInt64
        let lock: InodeLock
        /// O_APPEND: every write goes to the current end, whatever offset the kernel sends.
        let append: Bool
    }

    private let entries = Mutex<(next: UInt64, open: [UInt64: Entry])>((1, [:]))

    func add(_ entry: Entry) -> UInt64 {
        entries.withLock { table in
            let handle = table.next
            table.next += 1
            table.open[handle] = entry
            return handle
        }
    }

    func entry(_ handle: UInt64) -> Entry? { entries.withLock { $0.open[handle] } }

    func remove(_ handle: UInt64) {
        if let entry = entries.withLock({ $0.open.removeValue(forKey: handle) }) { Glibc.close(entry.fd) }
    }
}

extension EncryptedFile: @unchecked Sendable where Storage: Sendable {}
