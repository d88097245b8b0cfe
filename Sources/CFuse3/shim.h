// libfuse3 for Swift. FUSE_USE_VERSION must be defined here, before the headers: a define on the
// Swift side never reaches the C headers that Swift imports. 312 selects the 3.12+ API
// (fuse_session_new and fuse_loop_config as they are in libfuse 3.14).
#ifndef KMSFS_CFUSE3_SHIM_H
#define KMSFS_CFUSE3_SHIM_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>

/// FUSE_USE_VERSION as this module was compiled with it, for a check from Swift.
static inline int CFuse3_use_version(void) { return FUSE_USE_VERSION; }

#endif
