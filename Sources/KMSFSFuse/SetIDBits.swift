#if canImport(Glibc)
import Glibc
#endif

/// The promise that comes with FUSE_HANDLE_KILLPRIV_V2 (see ``KernelChannel``): the kernel no
/// longer drops set-ID bits on write, truncate and fallocate; kmsfs does, as the VFS would
/// (`setattr_should_drop_suidgid`): S_ISUID always; S_ISGID when the group may execute, or when
/// the caller is not in the file's group — unless the caller may keep them (CAP_FSETID).
///
/// libfuse 3.14 drops the kernel's flags that carry that judgement, so it is made here from the
/// request's credentials: uid 0 stands for CAP_FSETID, and the caller's primary group for its
/// groups (a writer in the file's group only by a supplementary group loses S_ISGID: stricter
/// than ext4, never looser). Writes from the page cache's writeback keep the bits: the kernel
/// sends a write that must drop them straight through, not through the cache.
enum SetIDBits {
    /// Drops the bits on `fd`'s file for a change `requester` makes; true if any were dropped.
    @discardableResult
    static func drop(_ fd: Int32, for requester: Requester) throws -> Bool {
        guard requester.uid != 0 else { return false }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw FuseError(errno) }
        let mode = info.st_mode & 0o7777
        let dropsGroup = mode & S_IXGRP != 0 || requester.gid != info.st_gid
        let kept = mode & ~(S_ISUID | (dropsGroup ? S_ISGID : 0))
        guard kept != mode else { return false }
        // Through /proc: `fd` may be an O_PATH descriptor, which fchmod refuses.
        guard chmod("/proc/self/fd/\(fd)", kept) == 0 else { throw FuseError(errno) }
        return true
    }
}
