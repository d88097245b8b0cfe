import KMSFSCrypto

/// One encrypted file: plaintext reads, writes and truncation mapped onto its chunks.
///
/// Partial chunks are read, decrypted, patched and re-sealed (read-modify-write); the final chunk
/// is re-sealed whenever the end of the file moves, so the file always ends in a short final
/// chunk. Growing a file leaves whole chunks as holes rather than writing encrypted zeros.
///
/// Crashes: every operation keeps the backing file at a size some file can have, at every
/// step (the size moves first when growing, last when shrinking), so an operation cut short
/// leaves at most the chunks it overlaps failing authentication — including bytes of those
/// chunks written earlier, because a chunk is sealed as a unit. docs/FORMAT.md, "Crashes".
///
/// Not synchronized: the caller serializes operations that touch the same chunks (the FUSE
/// frontend holds a per-inode lock). Every operation reads the size from the storage, so nothing
/// is cached between calls.
public struct EncryptedFile<Storage: CipherStorage> {
    public let storage: Storage
    public let cipher: ChunkCipher
    public var header: FileHeader { cipher.header }
    var geometry: ChunkGeometry { cipher.geometry }

    /// Starts a new, empty encrypted file in `storage`, which must be empty: writes the header and
    /// the empty final chunk.
    public static func create(
        in storage: Storage, key: SecretBytes, header: FileHeader, holes: HolePolicy = .sealed,
        parallelism: ChunkParallelism = ChunkParallelism()
    ) throws -> EncryptedFile {
        let file = EncryptedFile(storage: storage, cipher: ChunkCipher(key: key, header: header, holes: holes, parallelism: parallelism))
        try file.initialize()
        return file
    }

    /// Opens an existing encrypted file: reads and parses its header. Chunks are authenticated
    /// as they are read.
    /// - Throws: ``FormatError`` if the header is missing or unreadable.
    public init(opening storage: Storage, key: SecretBytes, holes: HolePolicy = .sealed,
                parallelism: ChunkParallelism = ChunkParallelism()) throws {
        var bytes = [UInt8](repeating: 0, count: FileHeader.byteCount)
        let count = try bytes.withUnsafeMutableBytes { try storage.read(into: $0, at: 0) }
        guard count == FileHeader.byteCount else { throw FormatError.notAnEncryptedFile }
        let header = try FileHeader(decoding: bytes)
        self.init(storage: storage, cipher: ChunkCipher(key: key, header: header, holes: holes, parallelism: parallelism))
    }

    /// A file over `storage` with an existing cipher (for tests and tools that pick the nonces).
    package init(storage: Storage, cipher: ChunkCipher) {
        self.storage = storage
        self.cipher = cipher
    }

    /// Writes the header and the empty final chunk of a new file.
    package func initialize() throws {
        let headerBytes = header.encoded
        try headerBytes.withUnsafeBytes { try storage.write($0, at: 0) }
        try sealAndWrite(UnsafeRawBufferPointer(start: nil, count: 0), firstChunk: 0, endsFile: true)
    }

    /// The plaintext size, from the ciphertext size alone (no key needed).
    /// - Throws: ``FormatError/invalidCipherSize(_:)`` if the backing file was cut or extended.
    public func plainSize() throws -> Int64 {
        try geometry.plainSize(forCipherSize: storage.size())
    }

    // MARK: Reading

    /// Reads up to `buffer.count` plaintext bytes at `offset`; fewer only at the end of the file.
    ///
    /// - Throws: ``FormatError`` if any chunk in the range fails authentication; then nothing of
    ///   the range is returned (the buffer is zeroed).
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        precondition(offset >= 0)
        guard buffer.count > 0 else { return 0 }
        let size = try plainSize()
        guard offset < size else {
            // A read at the end still authenticates the final chunk: otherwise an empty file (or
            // one cut to a chunk boundary plus 40 bytes) would read as a valid, shorter file.
            try verifyFinalChunk(fileSize: size)
            return 0
        }
        let end = min(offset + Int64(buffer.count), size)
        let first = geometry.chunkIndex(forPlainOffset: offset)
        let runStart = geometry.plainOffset(ofChunk: first)
        let runEnd = min(geometry.plainOffset(ofChunk: geometry.chunkIndex(forPlainOffset: end - 1) + 1), size)
        let wanted = Int(end - offset)
        if runStart == offset && runEnd == end {
            // Aligned: decrypt straight into the caller's buffer.
            try readRun(firstChunk: first, plainLength: wanted, fileSize: size,
                        into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<wanted]))
        } else {
            try withUnsafeTemporaryAllocation(byteCount: Int(runEnd - runStart), alignment: 16) { run in
                defer { SecretBytes.wipe(run) }
                try readRun(firstChunk: first, plainLength: run.count, fileSize: size, into: run)
                let skip = Int(offset - runStart)
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: run[skip..<skip + wanted]))
            }
        }
        return wanted
    }

    /// Checks what a reader that never reaches the end would otherwise take on trust: that the
    /// backing size is one a file can have, and that the final chunk authenticates (so a file
    /// cut at a chunk boundary, or to its header, fails here). An open must call it: the kernel
    /// sends no read for a file it believes empty and serves cached pages without asking.
    /// - Throws: ``FormatError`` for an impossible size or a final chunk that fails.
    public func verifyEnd() throws {
        try verifyFinalChunk(fileSize: plainSize())
    }

    /// Authenticates the final chunk, which a read ending at the end of the file also covers.
    func verifyFinalChunk(fileSize: Int64) throws {
        let final = geometry.finalChunkIndex(forPlainSize: fileSize)
        let length = Int(fileSize - geometry.plainOffset(ofChunk: final))
        try withUnsafeTemporaryAllocation(byteCount: max(length, 1), alignment: 16) { plain in
            defer { SecretBytes.wipe(plain) }
            try readRun(firstChunk: final, plainLength: length, fileSize: fileSize,
                        into: UnsafeMutableRawBufferPointer(rebasing: plain[0..<length]))
        }
    }

    /// Reads and opens the chunks that hold `plainLength` bytes from chunk `firstChunk`.
    func readRun(firstChunk: Int64, plainLength: Int, fileSize: Int64, into plaintext: UnsafeMutableRawBufferPointer) throws {
        let endsFile = geometry.plainOffset(ofChunk: firstChunk) + Int64(plainLength) == fileSize
        let cipherLength = geometry.cipherLength(forPlainLength: plainLength, endsFile: endsFile)
        let cipherOffset = geometry.cipherOffset(ofChunk: firstChunk)
        try withUnsafeTemporaryAllocation(byteCount: cipherLength, alignment: 16) { ciphertext in
            let count = try storage.read(into: ciphertext, at: cipherOffset)
            // The size said these bytes exist; fewer means the file changed under us.
            guard count == cipherLength else { throw FormatError.invalidCipherSize(cipherOffset + Int64(count)) }
            try cipher.open(UnsafeRawBufferPointer(ciphertext), firstChunk: firstChunk, endsFile: endsFile, into: plaintext)
        }
    }

    // MARK: Writing

    /// Writes `bytes` at plaintext `offset`, growing the file if the write ends beyond it. A write
    /// that starts beyond the end first grows the file with zeros (sealed, or a hole).
    ///
    /// The backing space the write needs is reserved before any byte changes, so a full disk
    /// fails it with ENOSPC and leaves the file as it was.
    /// - Throws: ``FormatError/fileTooLarge`` past ``ChunkGeometry/maximumPlainSize``.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws {
        let end = try geometry.checkedEnd(offset: offset, count: Int64(bytes.count))
        guard bytes.count > 0 else { return }
        var size = try plainSize()
        try reserveForWrite(offset: offset, end: end, size: size)
        if offset > size {
            try truncate(to: offset)
            size = offset
        }
        let newSize = max(size, end)
        if newSize > size {
            // The backing file takes its new size before any chunk is sealed into it, so a
            // write cut short (a crash, a full disk) leaves a valid size and unauthenticated
            // chunks only in the range it was writing — never a length no file can have, which
            // would refuse the whole file.
            try storage.truncate(to: geometry.cipherSize(forPlainSize: newSize))
        }
        let first = geometry.chunkIndex(forPlainOffset: offset)
        let lastTouched = geometry.chunkIndex(forPlainOffset: end - 1)
        // A write that reaches the old end rewrites through the new final chunk (maybe empty);
        // one inside the final chunk re-seals it as final too.
        let newFinal = geometry.finalChunkIndex(forPlainSize: newSize)
        let lastRewritten = end >= size ? newFinal : lastTouched
        let endsFile = lastRewritten == newFinal
        let runStart = geometry.plainOffset(ofChunk: first)
        let runEnd = min(geometry.plainOffset(ofChunk: lastRewritten + 1), newSize)

        // Old bytes that share a chunk with the write: before it in the first chunk, and after it
        // in the last touched chunk (only where the old file had bytes).
        let keepHead = offset > runStart
        let tailEnd = min(geometry.plainOffset(ofChunk: lastTouched + 1), size)
        let keepTail = end < tailEnd

        if !keepHead && !keepTail && runEnd - runStart == Int64(bytes.count) {
            return try sealAndWrite(bytes, firstChunk: first, endsFile: endsFile)
        }
        try withUnsafeTemporaryAllocation(byteCount: Int(runEnd - runStart), alignment: 16) { run in
            defer { SecretBytes.wipe(run) }
            if keepHead {
                try readOld(chunk: first, fileSize: size, into: run, runStart: runStart)
            }
            if keepTail && !(keepHead && lastTouched == first) {
                try readOld(chunk: lastTouched, fileSize: size, into: run, runStart: runStart)
            }
            let at = Int(offset - runStart)
            UnsafeMutableRawBufferPointer(rebasing: run[at..<at + bytes.count]).copyMemory(from: bytes)
            try sealAndWrite(UnsafeRawBufferPointer(run), firstChunk: first, endsFile: endsFile)
        }
    }

    /// Decrypts old chunk `chunk` (as far as the old file has it) into its place in `run`.
    private func readOld(chunk: Int64, fileSize: Int64, into run: UnsafeMutableRawBufferPointer, runStart: Int64) throws {
        let chunkStart = geometry.plainOffset(ofChunk: chunk)
        let length = Int(min(Int64(geometry.plainChunkSize), fileSize - chunkStart))
        let at = Int(chunkStart - runStart)
        try readRun(firstChunk: chunk, plainLength: length, fileSize: fileSize,
                    into: UnsafeMutableRawBufferPointer(rebasing: run[at..<at + length]))
    }

    /// Seals a run of chunks and stores it with one write.
    func sealAndWrite(_ plaintext: UnsafeRawBufferPointer, firstChunk: Int64, endsFile: Bool) throws {
        let cipherLength = geometry.cipherLength(forPlainLength: plaintext.count, endsFile: endsFile)
        try withUnsafeTemporaryAllocation(byteCount: cipherLength, alignment: 16) { ciphertext in
            try cipher.seal(plaintext, firstChunk: firstChunk, endsFile: endsFile, into: ciphertext)
            try storage.write(UnsafeRawBufferPointer(ciphertext), at: geometry.cipherOffset(ofChunk: firstChunk))
        }
    }
}
