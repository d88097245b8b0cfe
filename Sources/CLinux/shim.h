// Linux system calls that Glibc's Swift module does not export (extended attributes first; the
// FUSE frontend will add renameat2 and fallocate flags).
#ifndef KMSFS_CLINUX_SHIM_H
#define KMSFS_CLINUX_SHIM_H

#include <sys/types.h>
#include <sys/xattr.h>

#endif
