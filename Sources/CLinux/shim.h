// Linux system calls and flags that Glibc's Swift module does not export: extended attributes,
// renameat2, fallocate, core-dump control.
#ifndef KMSFS_CLINUX_SHIM_H
#define KMSFS_CLINUX_SHIM_H

#include <sys/types.h>
#include <sys/xattr.h>

/// GNU flags that Glibc's Swift module leaves out (it is built without _GNU_SOURCE).
static const int CLinux_O_PATH = 010000000;
static const int CLinux_AT_EMPTY_PATH = 0x1000;
/// O_TMPFILE (__O_TMPFILE | O_DIRECTORY): an unnamed file in a directory, linked in when complete.
static const int CLinux_O_TMPFILE = 020200000;
static const int CLinux_AT_SYMLINK_FOLLOW = 0x400;

#include <unistd.h>
#include <sys/syscall.h>

/// utimensat(2)'s special nanosecond values.
static const long CLinux_UTIME_NOW = ((1l << 30) - 1l);
static const long CLinux_UTIME_OMIT = ((1l << 30) - 2l);

/// syncfs(2): commits the filesystem that holds `fd` (a GNU extension, by its system call).
static inline int CLinux_syncfs(int fd) { return (int)syscall(SYS_syncfs, fd); }

/// renameat2(2), with RENAME_NOREPLACE (1) and RENAME_EXCHANGE (2).
static inline int CLinux_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags) {
    return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
}

/// fallocate(2) and its FALLOC_FL_KEEP_SIZE flag.
static const int CLinux_FALLOC_FL_KEEP_SIZE = 0x01;
static inline int CLinux_fallocate(int fd, int mode, off_t offset, off_t length) {
    return (int)syscall(SYS_fallocate, fd, mode, offset, length);
}

#include <sys/prctl.h>
#include <sys/resource.h>

/// Keeps key material out of core dumps: no core file (RLIMIT_CORE 0) and not dumpable (which
/// also keeps other processes of the same user from ptrace and /proc/PID/mem). prctl is
/// variadic, which Swift cannot call. Returns 0, or -1 with errno.
static inline int CLinux_disable_core_dumps(void) {
    struct rlimit none = { 0, 0 };
    if (setrlimit(RLIMIT_CORE, &none) != 0) return -1;
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/// The soft RLIMIT_MEMLOCK in bytes (RLIM_INFINITY when unlimited), for messages about mlock.
static inline unsigned long long CLinux_memlock_limit(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_MEMLOCK, &limit) != 0) return 0;
    return (unsigned long long)limit.rlim_cur;
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (the mount pins one descriptor per inode
/// the kernel knows). Returns the soft limit in force afterwards, 0 if it cannot be read.
static inline unsigned long long CLinux_raise_descriptor_limit(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
    if (limit.rlim_cur < limit.rlim_max) {
        struct rlimit raised = { limit.rlim_max, limit.rlim_max };
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit.rlim_cur = limit.rlim_max;
    }
    return (unsigned long long)limit.rlim_cur;
}

#include <sys/file.h>

/// flock(2) with LOCK_EX | LOCK_NB: 0, or -1 with errno (EWOULDBLOCK when another holds it).
static inline int CLinux_try_lock_exclusive(int fd) { return flock(fd, LOCK_EX | LOCK_NB); }

#include <sys/socket.h>

/// The process and user ID of a Unix-socket peer (SO_PEERCRED; struct ucred itself needs
/// _GNU_SOURCE, which Glibc's Swift module lacks). Returns 0, or -1 with errno.
static inline int CLinux_peer_credentials(int fd, int *pid, unsigned int *uid) {
    struct { int pid; unsigned int uid; unsigned int gid; } credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -1;
    *pid = credentials.pid;
    *uid = credentials.uid;
    return 0;
}

#endif
