import CLinux
import Foundation
import KMSFSFormat
#if canImport(Glibc)
import Glibc
#endif

/// Reading and writing an open file's contents under its inode's lock.
extension Filesystem {
    /// Reads into `buffer` at `offset`; a chunk that fails authentication is EIO and a log line
    /// naming the inode and the range, never other bytes.
    func read(_ entry: OpenFiles.Entry, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        do {
            // Past the largest file there is nothing to read (and no arithmetic to overflow).
            guard let last = try? geometry.checkedEnd(offset: offset, count: Int64(max(buffer.count, 1))) else { return 0 }
            var first = geometry.chunkIndex(forPlainOffset: offset)
            while true {
                let range = InodeLock.Range(first: first, last: geometry.chunkIndex(forPlainOffset: last))
                let result = try entry.lock.withRange(range, exclusive: false) { () throws -> Int? in
                    // A read past the end authenticates the final chunk, which must be held too.
                    let finalChunk = geometry.finalChunkIndex(forPlainSize: try entry.file.plainSize())
                    if finalChunk < range.first { return nil }
                    return try entry.file.read(into: buffer, at: offset)
                }
                if let result { return result }
                first = geometry.finalChunkIndex(forPlainSize: try entry.file.plainSize())
            }
        } catch {
            logFailure(error, inode: entry.inode, offset: offset, length: buffer.count)
            throw FuseError(Self.errorNumber(for: error))
        }
    }

    /// Writes `bytes` at `offset` (at the end for O_APPEND). A write inside the file holds only
    /// its chunks, so writers of disjoint regions run in parallel; one that reaches the end (and
    /// so moves the final chunk) holds the whole file. The format reserves the backing space
    /// first: on a full disk the writer gets ENOSPC and the file stays as it was.
    func write(_ entry: OpenFiles.Entry, _ bytes: UnsafeRawBufferPointer, at offset: Int64) throws {
        do {
            let end = try geometry.checkedEnd(offset: offset, count: Int64(bytes.count))
            if !entry.append && bytes.count > 0 {
                let range = InodeLock.Range(first: geometry.chunkIndex(forPlainOffset: offset),
                                            last: geometry.chunkIndex(forPlainOffset: end - 1))
                let done = try entry.lock.withRange(range, exclusive: true) { () throws -> Bool in
                    guard end < (try entry.file.plainSize()) else { return false }
                    try entry.file.write(bytes, at: offset)
                    return true
                }
                if done { return }
            }
            try entry.lock.withWholeFile {
                try entry.file.write(bytes, at: entry.append ? try entry.file.plainSize() : offset)
            }
        } catch {
            logFailure(error, inode: entry.inode, offset: offset, length: bytes.count)
            throw FuseError(Self.errorNumber(for: error))
        }
    }

    /// fallocate(2): mode 0 reserves backing space for the range and grows the file to cover it;
    /// FALLOC_FL_KEEP_SIZE only reserves. Punching holes, zeroing, collapsing and inserting
    /// ranges would re-seal chunks in ways no caller needs yet: EOPNOTSUPP (glibc's
    /// posix_fallocate then falls back to writing).
    func allocate(_ entry: OpenFiles.Entry, mode: Int32, offset: Int64, length: Int64) throws {
        let keepSize = CLinux_FALLOC_FL_KEEP_SIZE
        guard mode == 0 || mode == keepSize else { throw FuseError(EOPNOTSUPP) }
        guard offset >= 0, length > 0 else { throw FuseError(EINVAL) }
        do {
            try entry.lock.withWholeFile { try entry.file.allocate(offset: offset, length: length, keepSize: mode == keepSize) }
        } catch {
            logFailure(error, inode: entry.inode, offset: offset, length: Int(clamping: length))
            throw FuseError(Self.errorNumber(for: error))
        }
    }

    /// Integrity failures are logged with the inode and range (never data): the errno alone
    /// does not say that a file was tampered with.
    func logFailure(_ error: any Error, inode: UInt64, offset: Int64, length: Int) {
        guard let failure = error as? FormatError, failure != .fileTooLarge else { return }
        logger.error("integrity failure in inode \(inode): \(failure)",
                     metadata: ["fuse.ino": "\(inode)", "kmsfs.offset": "\(offset)", "kmsfs.length": "\(length)"])
    }
}
