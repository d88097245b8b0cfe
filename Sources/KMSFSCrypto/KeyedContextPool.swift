import Synchronization

/// A cipher context keyed once with a 32-byte key, then reused for many operations.
public protocol KeyedContext: AnyObject, Sendable {
    init(key: SecretBytes) throws(CryptoError)
}

/// Keyed contexts for one key, lent to one thread at a time.
///
/// Each file key gets a pool, so a context is keyed once and then serves every chunk of that file
/// on whichever thread (FUSE worker or Dispatch stripe) borrows it. The pool grows to the peak
/// number of concurrent borrowers and keeps at most ``maximumIdle`` contexts between uses.
public final class KeyedContextPool<Context: KeyedContext>: Sendable {
    /// The key every context is keyed with (the key service seals it into its store).
    @usableFromInline package let key: SecretBytes
    /// Idle contexts; a borrowed context is owned by its borrower until returned.
    /// `@usableFromInline` with ``withContext(_:)`` inlinable, so that callers in other modules
    /// get it specialized: unspecialized generic code inside the lock made the critical section
    /// long enough for the chunk workers to queue on it (random 4 KiB writes fell by 40 %).
    @usableFromInline let idle = Mutex<[Context]>([])
    public let maximumIdle: Int

    public init(key: SecretBytes, maximumIdle: Int = 16) {
        precondition(key.count == AESGCM.keyByteCount, "the contexts take a 32-byte key")
        self.key = key
        self.maximumIdle = maximumIdle
    }

    /// Runs `body` with a context of its own, made on first need and returned afterwards.
    /// - Throws: what `body` throws, or ``CryptoError`` if OpenSSL cannot make a context.
    @inlinable
    public func withContext<R>(_ body: (Context) throws -> R) throws -> R {
        let context = try idle.withLock({ $0.popLast() }) ?? Context(key: key)
        defer {
            idle.withLock { contexts in
                if contexts.count < maximumIdle { contexts.append(context) }
            }
        }
        return try body(context)
    }
}

/// AES-256-GCM with 96-bit nonces: the key service's sealing (key material, the root key).
public typealias AESGCMContextPool = KeyedContextPool<AESGCMContext>
/// XAES-256-GCM: file chunks (docs/FORMAT.md, "Nonces").
public typealias XAESGCMContextPool = KeyedContextPool<XAESGCMContext>
