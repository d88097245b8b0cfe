import CLinux
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The inodes the kernel knows, each pinned by an CLinux_O_PATH descriptor on its backing file (as
/// libfuse's passthrough_ll does), so that renames behind our back never send us to the wrong file.
///
/// Keyed by the backing (st_dev, st_ino): hard links share one inode. `lookups` counts the
/// kernel's references; `forget` subtracts and the entry (and its descriptor) goes at zero.
final class InodeTable: Sendable {
    struct Inode: Sendable {
        let fd: Int32
        let device: UInt64
        let backingInode: UInt64
        var lookups: UInt64
        /// The directory and name of the last lookup that reached it: what the kernel is asked
        /// to forget when the table is too full (``InodeEviction``).
        var parent: UInt64
        var name: FileName?
        /// When it was last used, on the table's own clock.
        var lastUse: UInt64
        /// Guards the file's contents; shared by every handle (and hard link) of the inode.
        let lock = InodeLock()
    }

    private struct State {
        var inodes: [UInt64: Inode] = [:]
        var byBacking: [BackingKey: UInt64] = [:]
        var next: UInt64 = 2  // 1 is FUSE_ROOT_ID
        var clock: UInt64 = 0
    }

    private struct BackingKey: Hashable {
        let device: UInt64
        let inode: UInt64
    }

    static let rootID: UInt64 = 1
    private let state = Mutex(State())

    init(rootFD: Int32) throws {
        var info = stat()
        guard fstat(rootFD, &info) == 0 else { throw FuseError(errno) }
        state.withLock { state in
            state.inodes[Self.rootID] = Inode(fd: rootFD, device: UInt64(info.st_dev), backingInode: UInt64(info.st_ino), lookups: 2,
                                              parent: Self.rootID, name: nil, lastUse: 0)
            state.byBacking[BackingKey(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))] = Self.rootID
        }
    }

    /// The CLinux_O_PATH descriptor of inode `id`.
    func fd(_ id: UInt64) -> Int32? {
        state.withLock { state in
            state.clock &+= 1
            state.inodes[id]?.lastUse = state.clock
            return state.inodes[id]?.fd
        }
    }

    /// How many inodes the table holds (each one a descriptor).
    var count: Int { state.withLock { $0.inodes.count } }

    /// The `count` least recently used inodes' last names, for the kernel to forget.
    func leastRecentlyUsed(_ count: Int) -> [(parent: UInt64, name: FileName)] {
        let candidates = state.withLock { state in
            state.inodes.values.compactMap { inode in inode.name.map { (inode.lastUse, inode.parent, $0) } }
        }
        return candidates.sorted { $0.0 < $1.0 }.prefix(max(0, count)).map { (parent: $0.1, name: $0.2) }
    }

    /// The content lock of inode `id` (the kernel keeps an inode while it has open handles).
    func lock(_ id: UInt64) -> InodeLock? { state.withLock { $0.inodes[id]?.lock } }

    /// Finds or adds the inode of the backing node `fd` (an O_PATH descriptor, which the table
    /// takes over: kept for a new inode, closed for a known one), counting one kernel reference.
    /// Returns the inode ID and the backing file's stat. (Names are ``BackingTree``'s.)
    func adopt(_ fd: Int32, parent: UInt64, name: FileName) throws -> (UInt64, stat) {
        var info = stat()
        guard fstatat(fd, "", &info, CLinux_AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 else {
            let error = errno
            close(fd)
            throw FuseError(error)
        }
        let key = BackingKey(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
        let (id, duplicate) = state.withLock { state -> (UInt64, Bool) in
            state.clock &+= 1
            if let existing = state.byBacking[key] {
                state.inodes[existing]?.lookups += 1
                state.inodes[existing]?.parent = parent
                state.inodes[existing]?.name = name
                state.inodes[existing]?.lastUse = state.clock
                return (existing, true)
            }
            let id = state.next
            state.next += 1
            state.inodes[id] = Inode(fd: fd, device: key.device, backingInode: key.inode, lookups: 1,
                                     parent: parent, name: name, lastUse: state.clock)
            state.byBacking[key] = id
            return (id, false)
        }
        if duplicate { close(fd) }
        return (id, info)
    }

    /// The kernel drops `count` references to `id`; the inode goes when none remain (then true).
    @discardableResult
    func forget(_ id: UInt64, count: UInt64) -> Bool {
        let closing: Int32? = state.withLock { state in
            guard var inode = state.inodes[id], id != Self.rootID else { return nil }
            precondition(inode.lookups >= count, "forget below zero for inode \(id)")
            inode.lookups -= count
            guard inode.lookups == 0 else {
                state.inodes[id] = inode
                return nil
            }
            state.inodes[id] = nil
            state.byBacking[BackingKey(device: inode.device, inode: inode.backingInode)] = nil
            return inode.fd
        }
        if let closing { close(closing) }
        return closing != nil
    }
}

/// An errno to answer the kernel with.
struct FuseError: Error, CustomStringConvertible {
    let errno: Int32
    init(_ errno: Int32) { self.errno = errno }
    var description: String { String(cString: strerror(errno)) }
}
