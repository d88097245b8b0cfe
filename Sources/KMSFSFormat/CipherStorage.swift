/// The bytes of one backing file, as ``EncryptedFile`` needs them.
///
/// The FUSE frontend implements it on a file descriptor (pread/pwrite/ftruncate/fstat); tests
/// implement it in memory. Implementations report I/O failures by throwing; ``EncryptedFile``
/// passes those errors through unchanged (ENOSPC stays ENOSPC).
public protocol CipherStorage {
    /// The current size in bytes.
    func size() throws -> Int64
    /// Reads up to `buffer.count` bytes at `offset`; returns fewer only at the end of the file.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int
    /// Writes all of `bytes` at `offset`, extending the file if needed.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws
    /// Sets the size; growing leaves a zero-filled (ideally sparse) gap.
    func truncate(to size: Int64) throws
    /// Reserves space for bytes `[offset, offset + count)` without changing the size, so that a
    /// full disk fails the operation before it changes any byte (fallocate(KEEP_SIZE)).
    /// Storage that cannot reserve does nothing.
    func reserve(at offset: Int64, count: Int64) throws
}

extension CipherStorage {
    public func reserve(at offset: Int64, count: Int64) throws {}
}
