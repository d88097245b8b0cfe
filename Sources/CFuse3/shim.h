// libfuse3 for Swift. FUSE_USE_VERSION must be defined here, before the headers: a define on the
// Swift side never reaches the C headers that Swift imports. 312 selects the 3.12+ API
// (fuse_session_new and fuse_loop_config as they are in libfuse 3.14).
#ifndef KMSFS_CFUSE3_SHIM_H
#define KMSFS_CFUSE3_SHIM_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>

/// FUSE_USE_VERSION as this module was compiled with it, for a check from Swift.
static inline int CFuse3_use_version(void) { return FUSE_USE_VERSION; }

/// fuse_session_loop_mt is a macro selecting a versioned symbol.
static inline int CFuse3_session_loop_mt(struct fuse_session *session, struct fuse_loop_config *config) {
    return fuse_session_loop_mt(session, config);
}

/// FUSE_ARGS_INIT is a macro: arguments for fuse_session_new.
static inline struct fuse_args CFuse3_args(int argc, char **argv) {
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    return args;
}

#endif
