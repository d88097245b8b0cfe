internal import COpenSSL

/// Key material that wipes itself when released and never shows its contents.
///
/// Keys live in a buffer of their own, outside Swift arrays, so that no copy-on-write can leave
/// an unwiped duplicate behind; `deinit` clears the whole buffer with `OPENSSL_cleanse`, which the
/// compiler may not elide. Like every user-space wipe this is best effort, not a guarantee: the
/// kernel may have swapped a page, and a caller who copies the bytes out owns that copy.
///
/// `@unchecked Sendable`: the bytes are written once, in `init`, and only read afterwards.
public final class SecretBytes: @unchecked Sendable {
    private let buffer: UnsafeMutableRawBufferPointer

    /// The number of secret bytes.
    public let count: Int

    /// Sees the wiped buffer just before it is freed; tests use it to prove the wipe happened.
    private let beforeRelease: ((UnsafeRawBufferPointer) -> Void)?

    /// Makes a buffer of `count` bytes and lets `initializer` fill it.
    ///
    /// - Throws: what `initializer` throws; the buffer is wiped and freed first.
    public convenience init<E: Error>(
        count: Int,
        initializingWith initializer: (UnsafeMutableRawBufferPointer) throws(E) -> Void
    ) throws(E) {
        try self.init(count: count, beforeRelease: nil, initializingWith: initializer)
    }

    package init<E: Error>(
        count: Int,
        beforeRelease: ((UnsafeRawBufferPointer) -> Void)?,
        initializingWith initializer: (UnsafeMutableRawBufferPointer) throws(E) -> Void
    ) throws(E) {
        precondition(count >= 0, "negative secret length")
        // One byte at least, so that an empty secret still has a valid base address.
        let buffer = Self.allocate(count)
        do {
            try initializer(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
        } catch {
            // Before any stored property is set, so no deinit runs: release here, once.
            Self.release(buffer, count: count, observer: beforeRelease)
            throw error
        }
        self.buffer = buffer
        self.count = count
        self.beforeRelease = beforeRelease
    }

    /// Copies `bytes` into a new secret. The caller still owns (and should wipe) its own copy.
    public convenience init(copying bytes: some Collection<UInt8>) {
        self.init(count: bytes.count) { $0.copyBytes(from: bytes) }
    }

    /// Moves `bytes` into a new secret and overwrites the source array with zeros.
    public convenience init(wiping bytes: inout [UInt8]) {
        self.init(copying: bytes)
        bytes.withUnsafeMutableBytes { Self.wipe($0) }
    }

    /// A new secret of `count` bytes from the operating system's random generator (RAND_bytes).
    public static func random(count: Int) throws(CryptoError) -> SecretBytes {
        try SecretBytes(count: count) { (buffer) throws(CryptoError) in try SecureRandom.fill(buffer) }
    }

    deinit {
        Self.release(buffer, count: count, observer: beforeRelease)
    }

    /// Zeroed bytes from OpenSSL's secure heap — locked in memory and left out of core dumps —
    /// once ``ProcessHardening/lockKeyMemory(byteCount:)`` has set it up; from the ordinary heap
    /// before that or when it is full (a key then works, merely unlocked).
    private static func allocate(_ count: Int) -> UnsafeMutableRawBufferPointer {
        let size = max(count, 1)
        guard let base = COpenSSL_secure_zalloc(size) ?? CRYPTO_zalloc(size, nil, 0) else {
            fatalError("out of memory for a \(size)-byte secret")
        }
        return UnsafeMutableRawBufferPointer(start: base, count: size)
    }

    private static func release(_ buffer: UnsafeMutableRawBufferPointer, count: Int, observer: ((UnsafeRawBufferPointer) -> Void)?) {
        wipe(buffer)
        observer?(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        // Frees from whichever heap the bytes came from (and wipes them once more).
        COpenSSL_secure_clear_free(buffer.baseAddress, buffer.count)
    }

    /// Whether these bytes live in the secure heap (locked, unless lockKeyMemory said otherwise).
    public var isInSecureHeap: Bool { CRYPTO_secure_allocated(buffer.baseAddress) == 1 }

    /// Lends the secret bytes to `body`; they must not escape it.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
    }

    /// Overwrites `buffer` with zeros in a way the optimizer keeps.
    public static func wipe(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        OPENSSL_cleanse(base, buffer.count)
    }
}

extension SecretBytes: Equatable {
    /// Constant-time comparison: the time taken does not depend on where the bytes differ.
    public static func == (lhs: SecretBytes, rhs: SecretBytes) -> Bool {
        guard lhs.count == rhs.count else { return false }
        return lhs.withUnsafeBytes { l in
            rhs.withUnsafeBytes { r in CRYPTO_memcmp(l.baseAddress, r.baseAddress, l.count) == 0 }
        }
    }
}

extension SecretBytes: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String { "<redacted \(count) bytes>" }
    public var debugDescription: String { description }
}
