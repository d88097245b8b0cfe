import CLinux
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
}
