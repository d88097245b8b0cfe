#if canImport(Glibc)
import Glibc
#endif

/// The promise that comes with FUSE_HANDLE_KILLPRIV_V2 (see ``KernelChannel``): the kernel no
/// longer drops set-ID bits on write and truncate, kmsfs does, as the VFS would: S_ISUID always,
/// S_ISGID when the group may execute (otherwise it marks mandatory locking, not privilege).
///
/// The kernel also says whether the caller holds CAP_FSETID (and may keep the bits), but libfuse
/// 3.14 drops those flags; so a privileged caller's direct write or truncation drops them too —
/// stricter than ext4, never looser. Writes from the page cache's writeback do not: the kernel
/// sends a write that must drop privileges straight through, not through the cache.
enum SetIDBits {
    /// Drops the bits on `fd`'s file; true if it had any to drop.
    @discardableResult
    static func drop(_ fd: Int32) throws -> Bool {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw FuseError(errno) }
        let mode = info.st_mode & 0o7777
        let kept = mode & ~(S_ISUID | (mode & S_IXGRP != 0 ? S_ISGID : 0))
        guard kept != mode else { return false }
        // Through /proc: `fd` may be an O_PATH descriptor, which fchmod refuses.
        guard chmod("/proc/self/fd/\(fd)", kept) == 0 else { throw FuseError(errno) }
        return true
    }
}
