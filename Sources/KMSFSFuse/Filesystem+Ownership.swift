import CFuse3
import CLinux
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The process behind a request, as the kernel names it.
struct Requester {
    let uid: uid_t
    let gid: gid_t

    init(_ request: fuse_req_t?) {
        let context = fuse_req_ctx(request)!.pointee
        uid = context.uid
        gid = context.gid
    }
}

/// Who owns what the mount creates.
///
/// A daemon running as root creates every backing node as root; on a shared mount each node
/// must instead belong to the process that asked for it, as on ext4: its uid, and its gid or,
/// under a setgid directory, the directory's (which the backing filesystem already gives).
/// Permission checks themselves are the kernel's on a shared mount (`default_permissions`): the
/// kernel checks every request against the attributes kmsfs reports before sending it. On a
/// mount only its owner reaches, the backing filesystem checks, with the daemon's (the owner's)
/// credentials (see ``FuseMount``).
extension Filesystem {
    /// The owner to give a node created in `parentFD` for `requester`, or nil when there is
    /// nothing to change (the daemon is not root, so nodes are its user's as on any mount a
    /// user makes; or root creates in a place that already gives root's ids).
    func owner(for requester: Requester, parentFD: Int32) -> (uid: uid_t, gid: gid_t)? {
        guard runsAsRoot else { return nil }
        var parent = stat()
        let setgid = fstatat(parentFD, "", &parent, CLinux_AT_EMPTY_PATH) == 0 && parent.st_mode & S_ISGID != 0
        let gid = setgid ? parent.st_gid : requester.gid
        if requester.uid == 0 && gid == 0 { return nil }
        return (requester.uid, gid)
    }

    /// Gives `entry` (just made by mkdir, mknod or symlink) to its creator, keeping the
    /// setuid/setgid bits of `mode` that chown(2) clears on non-directories.
    func giveNode(_ entry: BackingTree.Entry, to requester: Requester, mode: mode_t) throws {
        guard let owner = owner(for: requester, parentFD: entry.directoryFD) else { return }
        try tree.setOwner(entry, uid: owner.uid, gid: owner.gid)
        if mode & (S_ISUID | S_ISGID) != 0 && mode & S_IFMT != S_IFDIR && mode & S_IFMT != S_IFLNK {
            try tree.setMode(entry, mode: mode & 0o7777)
        }
    }
}
