import CFuse3
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The daemon's side of /dev/fuse, wrapped only to change one bit of the INIT reply.
///
/// Unless a FUSE server says it clears set-user-ID and set-group-ID bits itself
/// (FUSE_HANDLE_KILLPRIV_V2, kernel 5.11+), the kernel asks it for `security.capability` before
/// every write(2) to learn whether the write must drop privileges: a round trip per write, even
/// into the page cache (100 small writes made 95 GETXATTR requests). With the flag the kernel
/// marks the superblock SB_NOSEC and asks once per inode. libfuse 3.14 (Debian's) predates the
/// flag, so it is added to the INIT reply on its way to the kernel; a kernel that does not know
/// the bit ignores it. The obligation that comes with it is ``SetIDBits``.
enum KernelChannel {
    /// FUSE_HANDLE_KILLPRIV_V2 in fuse_init_out.flags (linux/fuse.h, protocol 7.33).
    static let handleKillPrivV2: UInt32 = 1 << 28
    /// Offset of `flags` in fuse_init_out (major, minor, max_readahead, flags).
    static let initFlagsOffset = 12
    /// Set by the init callback: libfuse sends the INIT reply next, before any other request
    /// is read, so the next reply written is that one.
    static let initReplyPending = Atomic<Bool>(false)
    /// The mounted session, for notifications; set before the loop starts its threads.
    nonisolated(unsafe) private static var session: OpaquePointer?

    /// Routes the session's reads and replies through this channel. Called after
    /// fuse_session_mount, on the descriptor it opened (libfuse keeps using it, and its
    /// cloned per-thread descriptors go through the same functions).
    static func install(on session: OpaquePointer) -> Bool {
        var io = fuse_custom_io()
        io.read = { fd, buffer, length, _ in Glibc.read(fd, buffer, length) }
        io.writev = { fd, vectors, count, _ in
            if KernelChannel.initReplyPending.exchange(false, ordering: .acquiringAndReleasing), let vectors, count >= 2 {
                KernelChannel.addKillPrivV2(to: vectors[1])
            }
            return Glibc.writev(fd, vectors, count)
        }
        Self.session = session
        return fuse_session_custom_io(session, &io, fuse_session_fd(session)) == 0
    }

    /// Called when the session loop has ended, before the session is destroyed: no more
    /// notifications.
    static func close() { session = nil }

    /// Tells the kernel that inode `id`'s attributes changed behind a reply that does not carry
    /// them (a write or an open that dropped set-ID bits): its cached mode is stale otherwise for
    /// the attribute timeout. Offset -1 leaves the page cache alone and takes no inode lock, so
    /// it is safe inside the request that changed the mode.
    /// Asks the kernel to drop its entry for `name` in directory `parent` (it then forgets the
    /// inode unless something holds it). False if the kernel refused (not cached, or in use).
    static func invalidateEntry(parent: UInt64, name: FileName) -> Bool {
        guard let session else { return false }
        return name.cString.withUnsafeBufferPointer { bytes in
            fuse_lowlevel_notify_inval_entry(session, fuse_ino_t(parent), bytes.baseAddress, bytes.count - 1) == 0
        }
    }

    static func invalidateAttributes(of id: UInt64) {
        guard let session else { return }
        _ = fuse_lowlevel_notify_inval_inode(session, fuse_ino_t(id), -1, 0)
    }

    private static func addKillPrivV2(to body: iovec) {
        guard let base = body.iov_base, body.iov_len >= initFlagsOffset + 4 else { return }
        let flags = base.loadUnaligned(fromByteOffset: initFlagsOffset, as: UInt32.self)
        base.storeBytes(of: flags | handleKillPrivV2, toByteOffset: initFlagsOffset, as: UInt32.self)
    }
}
