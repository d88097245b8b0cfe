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
        let count = Int64(max(buffer.count, 1))
        var first = geometry.chunkIndex(forPlainOffset: offset)
        do {
            while true {
                let range = InodeLock.Range(first: first, last: geometry.chunkIndex(forPlainOffset: offset + count))
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
            if let failure = error as? FormatError {
                logger.error("integrity failure in inode \(entry.inode): \(failure)",
                             metadata: ["fuse.ino": "\(entry.inode)", "kmsfs.offset": "\(offset)", "kmsfs.length": "\(buffer.count)"])
            }
            throw FuseError(Self.errorNumber(for: error))
        }
    }

    /// Writes `bytes` at `offset` (at the end for O_APPEND). A write inside the file holds only
    /// its chunks, so writers of disjoint regions run in parallel; one that reaches the end (and
    /// so moves the final chunk) holds the whole file.
    func write(_ entry: OpenFiles.Entry, _ bytes: UnsafeRawBufferPointer, at offset: Int64) throws {
        do {
            let end = offset + Int64(bytes.count)
            if !entry.append && bytes.count > 0 {
                let range = InodeLock.Range(first: geometry.chunkIndex(forPlainOffset: offset),
                                            last: geometry.chunkIndex(forPlainOffset: end - 1))
                let done = try entry.lock.withRange(range, exclusive: true) { () throws -> Bool in
                    let size = try entry.file.plainSize()
                    guard end < size else { return false }
                    try reserve(entry, writing: offset, count: bytes.count, size: size)
                    try entry.file.write(bytes, at: offset)
                    return true
                }
                if done { return }
            }
            try entry.lock.withWholeFile {
                let size = try entry.file.plainSize()
                let at = entry.append ? size : offset
                try reserve(entry, writing: at, count: bytes.count, size: size)
                try entry.file.write(bytes, at: at)
            }
        } catch {
            throw FuseError(Self.errorNumber(for: error))
        }
    }

    /// Reserves the backing space a write needs before it changes any byte: on a full disk the
    /// writer gets ENOSPC and the file stays as it was. A write cut short midway would leave a
    /// torn chunk, and not only at the end: a write into a hole (left by a truncate up, or by
    /// the writeback cache sending a later page first) needs new blocks too. The reservation
    /// covers the chunks the write seals (as far as the file will reach), and for a write past
    /// the end also the old final chunk's growth, not the hole between. Filesystems without
    /// fallocate are written without it.
    private func reserve(_ entry: OpenFiles.Entry, writing offset: Int64, count: Int, size: Int64) throws {
        let end = offset + Int64(count)
        let current = geometry.cipherSize(forPlainSize: size)
        let reach = geometry.cipherSize(forPlainSize: max(size, end))
        var ranges: [(Int64, Int64)] = []
        if offset > size {
            ranges.append((current, min(reach, geometry.cipherOffset(ofChunk: geometry.finalChunkIndex(forPlainSize: size) + 1))))
        }
        let first = geometry.chunkIndex(forPlainOffset: min(offset, size))
        ranges.append((geometry.cipherOffset(ofChunk: offset > size ? geometry.chunkIndex(forPlainOffset: offset) : first),
                       min(reach, geometry.cipherOffset(ofChunk: geometry.chunkIndex(forPlainOffset: end) + 1))))
        for (start, stop) in ranges where stop > start {
            guard CLinux_fallocate(entry.fd, CLinux_FALLOC_FL_KEEP_SIZE, off_t(start), off_t(stop - start)) != 0 else { continue }
            if errno == EOPNOTSUPP || errno == ENOSYS { return }
            throw FuseError(errno)
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
            try entry.lock.withWholeFile {
                let size = try entry.file.plainSize()
                let end = mode == 0 ? max(size, offset + length) : offset + length
                // The ciphertext of every chunk the range touches, reserved without changing the
                // backing size (the plaintext size is read from it): ENOSPC comes now, not later.
                let start = geometry.cipherOffset(ofChunk: geometry.chunkIndex(forPlainOffset: offset))
                let cipherEnd = geometry.cipherSize(forPlainSize: end)
                if cipherEnd > start {
                    guard CLinux_fallocate(entry.fd, keepSize, off_t(start), off_t(cipherEnd - start)) == 0 else { throw FuseError(errno) }
                }
                if mode == 0 && end > size { try entry.file.truncate(to: end) }
            }
        } catch {
            throw FuseError(Self.errorNumber(for: error))
        }
    }
}
