internal import COpenSSL
import CLinux
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What a process that holds keys does first: no core dumps, not dumpable. Data keys, the root
/// key and plaintext live in kmsfs's and kmsd's memory; a crash must not write them to disk,
/// and another process of the same user must not read them through ptrace or /proc/PID/mem.
public enum ProcessHardening {
    /// Applies it; throws with the errno if the kernel refuses (it does not for these calls).
    public static func disableCoreDumps() throws(CryptoError) {
        guard CLinux_disable_core_dumps() == 0 else {
            throw CryptoError.system("cannot disable core dumps: \(String(cString: strerror(errno)))")
        }
    }

    /// What ``lockKeyMemory(byteCount:)`` achieved.
    public enum KeyMemory: Equatable, Sendable {
        /// Every ``SecretBytes`` comes from a heap of this many bytes, locked (mlock) and left
        /// out of core dumps (MADV_DONTDUMP), between guard pages.
        case locked(byteCount: Int)
        /// Keys live in ordinary memory, which the kernel may swap out.
        case unlocked(reason: String)
    }

    /// Sets up OpenSSL's secure heap, from which every ``SecretBytes`` is then allocated, so
    /// that keys are never written to swap. Call once, early, and after any fork (locks are not
    /// inherited). Locking needs RLIMIT_MEMLOCK ≥ `byteCount` (systemd: LimitMEMLOCK) or
    /// CAP_IPC_LOCK; without it the heap still works, unlocked, and the answer says so. A full
    /// heap falls back to ordinary memory for further keys.
    /// Later calls return the first call's answer: OpenSSL sets its secure heap up once.
    public static func lockKeyMemory(byteCount: Int) -> KeyMemory {
        precondition(byteCount > 0 && byteCount & (byteCount - 1) == 0, "the secure heap's size is a power of two")
        return keyMemory.withLock { outcome in
            if let outcome { return outcome }
            let result = setUpSecureHeap(byteCount: byteCount)
            outcome = result
            return result
        }
    }

    private static let keyMemory = Mutex<KeyMemory?>(nil)

    private static func setUpSecureHeap(byteCount: Int) -> KeyMemory {
        switch CRYPTO_secure_malloc_init(byteCount, 16) {
        case 1:
            return .locked(byteCount: byteCount)
        case 2:
            return .unlocked(reason: "the \(byteCount)-byte key heap could not be locked or protected (RLIMIT_MEMLOCK is "
                             + "\(CLinux_memlock_limit()) bytes; raise it, e.g. LimitMEMLOCK= in the systemd unit, or grant CAP_IPC_LOCK)")
        default:
            return .unlocked(reason: "OpenSSL could not set up its secure heap")
        }
    }
}
