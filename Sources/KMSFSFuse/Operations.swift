import CFuse3
import KMSFSVolume
import CLinux
import Foundation
import KMSFSFormat
#if canImport(Glibc)
import Glibc
#endif

/// The low-level operation table: C functions that find the ``Filesystem`` through the request's
/// userdata and answer with `fuse_reply_*`. Built in a nonisolated function (callbacks defined at
/// top level would become main-actor state).
enum Operations {
    /// How long the kernel may trust attributes and names (and names that do not exist). kmsfs
    /// is the only writer of its backing directory while mounted, and every change through it
    /// updates the kernel's view, so this can be long; changes made to the backing directory
    /// behind the mount's back show after at most this long.
    static let attributeTimeout = 10.0

    static func filesystem(_ request: fuse_req_t?) -> Filesystem {
        Unmanaged<Filesystem>.fromOpaque(fuse_req_userdata(request)!).takeUnretainedValue()
    }

    /// Runs `body` and answers its errno if it throws.
    static func answer(_ request: fuse_req_t?, _ operation: String, _ body: () throws -> Void) {
        do {
            try body()
            MountMetrics.request(operation, failed: false)
        } catch let error as FuseError {
            fuse_reply_err(request, error.errno)
            MountMetrics.request(operation, failed: true)
        } catch {
            fuse_reply_err(request, EIO)
            MountMetrics.request(operation, failed: true)
        }
    }

    static let directories = DirectoryHandles()

    static func table() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { userdata, connection in
            // 1 MiB writes: 64 chunks sealed in parallel per request instead of 8 (128 KiB).
            connection!.pointee.max_write = FuseMount.maxWrite
            let fs = Unmanaged<Filesystem>.fromOpaque(userdata!).takeUnretainedValue()
            KernelChannel.initReplyPending.store(true, ordering: .releasing)
            // The kernel's writeback cache gathers small writes into page-sized and larger
            // requests (untar: 1.7× faster); it then owns sizes, times and O_APPEND offsets.
            let writeback = UInt32(FUSE_CAP_WRITEBACK_CACHE)
            if fs.wantsWritebackCache && connection!.pointee.capable & writeback != 0 {
                connection!.pointee.want |= writeback
                fs.writebackCache.store(true, ordering: .relaxed)
            }
            // The kernel caps the mount's read-ahead with this init's reply, once it has it:
            // the window can only be widened after that.
            DispatchQueue.global().asyncAfter(deadline: .now() + 0.2) { Readahead.raise(mountPoint: fs.mountPoint, logger: fs.logger) }
            fs.logger.info("FUSE connection: protocol \(connection!.pointee.proto_major).\(connection!.pointee.proto_minor), max_write \(connection!.pointee.max_write), max_readahead \(connection!.pointee.max_readahead), writeback cache \(fs.writebackCache.load(ordering: .relaxed))")
        }
        ops.lookup = { request, parent, name in
            Operations.answer(request, "lookup") {
                let fs = Operations.filesystem(request)
                let name = FileName(name!)
                var entry = fuse_entry_param()
                let id: UInt64, info: stat
                do { (id, info) = try fs.tree.lookup(name, in: UInt64(parent)) } catch let error as FuseError where error.errno == ENOENT {
                    // A negative entry: the kernel remembers that the name does not exist (tar and
                    // compilers ask again and again) until we create it or the timeout passes.
                    entry.entry_timeout = Operations.attributeTimeout
                    fuse_reply_entry(request, &entry)
                    return
                }
                entry.ino = fuse_ino_t(id)
                entry.attr = fs.plaintextAttributes(info, id: id)
                entry.attr_timeout = Operations.attributeTimeout
                entry.entry_timeout = Operations.attributeTimeout
                fuse_reply_entry(request, &entry)
            }
        }
        ops.forget = { request, ino, count in
            let fs = Operations.filesystem(request)
            if fs.inodes.forget(UInt64(ino), count: count) {
                fs.directoryKeys.forget(UInt64(ino))
                fs.tree.forget(UInt64(ino))
            }
            fuse_reply_none(request)
        }
        ops.getattr = { request, ino, _ in
            Operations.answer(request, "getattr") {
                var attributes = try Operations.filesystem(request).attributes(of: UInt64(ino))
                fuse_reply_attr(request, &attributes, Operations.attributeTimeout)
            }
        }
        // Reached only without default_permissions (a mount only its owner reaches): the
        // backing node answers, checked with the daemon's credentials, which are the owner's.
        ops.access = { request, ino, mask in
            Operations.answer(request, "access") {
                guard let fd = Operations.filesystem(request).inodes.fd(UInt64(ino)) else { throw FuseError(ENOENT) }
                guard faccessat(fd, "", mask, CLinux_AT_EMPTY_PATH) == 0 else { throw FuseError(errno) }
                fuse_reply_err(request, 0)
            }
        }
        ops.opendir = { request, ino, info in
            Operations.answer(request, "opendir") {
                guard let fd = Operations.filesystem(request).inodes.fd(UInt64(ino)) else { throw FuseError(ENOENT) }
                info!.pointee.fh = try Operations.directories.open(fd: fd)
                fuse_reply_open(request, info)
            }
        }
        ops.readdir = { request, ino, size, offset, info in
            Operations.listDirectory(request, UInt64(ino), size: size, offset: offset, handle: info!.pointee.fh, plus: false)
        }
        ops.readdirplus = { request, ino, size, offset, info in
            Operations.listDirectory(request, UInt64(ino), size: size, offset: offset, handle: info!.pointee.fh, plus: true)
        }
        ops.releasedir = { request, _, info in
            Operations.directories.close(info!.pointee.fh)
            fuse_reply_err(request, 0)
        }
        ops.statfs = { request, ino in
            Operations.answer(request, "statfs") {
                guard let fd = Operations.filesystem(request).inodes.fd(UInt64(ino)) ?? Operations.filesystem(request).inodes.fd(InodeTable.rootID) else {
                    throw FuseError(ENOENT)
                }
                var info = statvfs()
                guard fstatvfs(fd, &info) == 0 else { throw FuseError(errno) }
                fuse_reply_statfs(request, &info)
            }
        }
        ops.open = { request, ino, info in
            Operations.answer(request, "open") {
                info!.pointee.fh = try Operations.filesystem(request).openFile(UInt64(ino), flags: info!.pointee.flags, requester: Requester(request))
                fuse_reply_open(request, info)
            }
        }
        ops.read = { request, _, size, offset, info in
            Operations.answer(request, "read") {
                let fs = Operations.filesystem(request)
                guard let entry = fs.files.entry(info!.pointee.fh) else { throw FuseError(EBADF) }
                // Not zero-filled: read fills what it returns, and only that is sent.
                try withUnsafeTemporaryAllocation(byteCount: max(size, 1), alignment: 16) { buffer in
                    let count = try fs.read(entry, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<size]), at: Int64(offset))
                    fuse_reply_buf(request, buffer.baseAddress, count)
                    MountMetrics.plaintextBytesRead.increment(by: Int64(count))
                }
            }
        }
        ops.write = { request, _, data, size, offset, info in
            Operations.answer(request, "write") {
                let fs = Operations.filesystem(request)
                guard let entry = fs.files.entry(info!.pointee.fh) else { throw FuseError(EBADF) }
                if info!.pointee.writepage == 0, try SetIDBits.drop(entry.fd, for: Requester(request)) { KernelChannel.invalidateAttributes(of: entry.inode) }
                try fs.write(entry, UnsafeRawBufferPointer(start: data, count: size), at: Int64(offset))
                fuse_reply_write(request, size)
                MountMetrics.plaintextBytesWritten.increment(by: Int64(size))
            }
        }
        ops.fallocate = { request, _, mode, offset, length, info in
            Operations.answer(request, "fallocate") {
                let fs = Operations.filesystem(request)
                guard let entry = fs.files.entry(info!.pointee.fh) else { throw FuseError(EBADF) }
                try fs.allocate(entry, mode: mode, offset: Int64(offset), length: Int64(length))
                if try SetIDBits.drop(entry.fd, for: Requester(request)) { KernelChannel.invalidateAttributes(of: entry.inode) }
                fuse_reply_err(request, 0)
            }
        }
        ops.create = { request, parent, name, mode, info in
            Operations.answer(request, "create") {
                let fs = Operations.filesystem(request)
                let (id, attributes, handle) = try fs.createFile(parent: UInt64(parent), name: FileName(name!), mode: mode,
                                                                 flags: info!.pointee.flags, requester: Requester(request))
                info!.pointee.fh = handle
                var entry = fuse_entry_param()
                entry.ino = fuse_ino_t(id)
                entry.attr = attributes
                entry.attr_timeout = Operations.attributeTimeout
                entry.entry_timeout = Operations.attributeTimeout
                fuse_reply_create(request, &entry, info)
            }
        }
        ops.setattr = { request, ino, attributes, valid, info in
            Operations.answer(request, "setattr") {
                let fs = Operations.filesystem(request)
                let id = UInt64(ino)
                guard let pathFD = fs.inodes.fd(id) else { throw FuseError(ENOENT) }
                let path = "/proc/self/fd/\(pathFD)"
                let wanted = attributes!.pointee
                if valid & FUSE_SET_ATTR_MODE != 0 {
                    guard chmod(path, wanted.st_mode) == 0 else { throw FuseError(errno) }
                }
                if valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID) != 0 {
                    let uid = valid & FUSE_SET_ATTR_UID != 0 ? wanted.st_uid : uid_t.max
                    let gid = valid & FUSE_SET_ATTR_GID != 0 ? wanted.st_gid : gid_t.max
                    guard fchownat(pathFD, "", uid, gid, CLinux_AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 else { throw FuseError(errno) }
                }
                if valid & FUSE_SET_ATTR_SIZE != 0 {
                    do {
                        try fs.truncate(id, to: Int64(wanted.st_size), handle: info.map { $0.pointee.fh })
                        if valid & FUSE_SET_ATTR_MODE == 0 { try SetIDBits.drop(pathFD, for: Requester(request)) }
                    } catch {
                        throw FuseError(Filesystem.errorNumber(for: error))
                    }
                }
                if valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME) != 0 {
                    let omit = timespec(tv_sec: 0, tv_nsec: CLinux_UTIME_OMIT), now = timespec(tv_sec: 0, tv_nsec: CLinux_UTIME_NOW)
                    var times = [
                        valid & FUSE_SET_ATTR_ATIME_NOW != 0 ? now : (valid & FUSE_SET_ATTR_ATIME != 0 ? wanted.st_atim : omit),
                        valid & FUSE_SET_ATTR_MTIME_NOW != 0 ? now : (valid & FUSE_SET_ATTR_MTIME != 0 ? wanted.st_mtim : omit),
                    ]
                    guard utimensat(AT_FDCWD, path, &times, 0) == 0 else { throw FuseError(errno) }
                }
                var result = try fs.attributes(of: id)
                fuse_reply_attr(request, &result, Operations.attributeTimeout)
            }
        }
        ops.flush = { request, _, _ in
            fuse_reply_err(request, 0)
        }
        ops.fsync = { request, _, dataOnly, info in
            Operations.answer(request, "fsync") {
                guard let entry = Operations.filesystem(request).files.entry(info!.pointee.fh) else { throw FuseError(EBADF) }
                guard (dataOnly != 0 ? fdatasync(entry.fd) : fsync(entry.fd)) == 0 else { throw FuseError(errno) }
                fuse_reply_err(request, 0)
            }
        }
        ops.release = { request, _, info in
            Operations.filesystem(request).files.remove(info!.pointee.fh)
            fuse_reply_err(request, 0)
        }
        ops.mkdir = { request, parent, name, mode in
            Operations.answer(request, "mkdir") {
                let fs = Operations.filesystem(request)
                let name = FileName(name!)
                let entry = try fs.tree.entry(name, in: UInt64(parent), for: .create)
                try fs.tree.makeDirectory(entry, mode: mode)
                try fs.giveNode(entry, to: Requester(request), mode: mode | S_IFDIR)
                try Operations.replyEntry(request, fs, parent: UInt64(parent), name: name)
            }
        }
        ops.mknod = { request, parent, name, mode, device in
            Operations.answer(request, "mknod") {
                let fs = Operations.filesystem(request)
                let name = FileName(name!)
                let entry = try fs.tree.entry(name, in: UInt64(parent), for: .create)
                if mode & S_IFMT == S_IFREG {
                    // mknod(2) of a regular file: an empty encrypted file like any other.
                    // createFile counted a lookup for its own reply; replyEntry below counts the one sent.
                    let (id, _, handle) = try fs.createFile(parent: UInt64(parent), name: name, mode: mode & 0o7777, flags: O_WRONLY,
                                                            requester: Requester(request))
                    fs.files.remove(handle)
                    fs.inodes.forget(id, count: 1)
                } else {
                    // FIFOs, sockets and devices (the kernel checked CAP_MKNOD).
                    try fs.tree.makeNode(entry, mode: mode, device: dev_t(device))
                    try fs.giveNode(entry, to: Requester(request), mode: mode)
                }
                try Operations.replyEntry(request, fs, parent: UInt64(parent), name: name)
            }
        }
        ops.unlink = { request, parent, name in
            Operations.removeEntry(request, parent: parent, name: name, flags: 0)
        }
        ops.rmdir = { request, parent, name in
            Operations.removeEntry(request, parent: parent, name: name, flags: AT_REMOVEDIR)
        }
        ops.rename = { request, parent, name, newParent, newName, flags in
            Operations.answer(request, "rename") {
                let fs = Operations.filesystem(request)
                let source = try fs.tree.entry(FileName(name!), in: UInt64(parent), for: .change)
                let target = try fs.tree.entry(FileName(newName!), in: UInt64(newParent), for: .change)
                try fs.tree.rename(source, to: target, flags: flags)
                fs.directoryKeys.invalidateAll()
                fuse_reply_err(request, 0)
            }
        }
        ops.readlink = { request, ino in
            Operations.answer(request, "readlink") {
                let fs = Operations.filesystem(request)
                guard let fd = fs.inodes.fd(UInt64(ino)) else { throw FuseError(ENOENT) }
                fuse_reply_readlink(request, try fs.tree.symlinkTarget(fd))
            }
        }
        ops.symlink = { request, target, parent, name in
            Operations.answer(request, "symlink") {
                let fs = Operations.filesystem(request)
                let name = FileName(name!)
                let entry = try fs.tree.entry(name, in: UInt64(parent), for: .create)
                try fs.tree.makeSymlink(entry, target: target!)
                try fs.giveNode(entry, to: Requester(request), mode: S_IFLNK | 0o777)
                try Operations.replyEntry(request, fs, parent: UInt64(parent), name: name)
            }
        }
        ops.link = { request, ino, newParent, newName in
            Operations.answer(request, "link") {
                let fs = Operations.filesystem(request)
                let name = FileName(newName!)
                let entry = try fs.tree.entry(name, in: UInt64(newParent), for: .create)
                guard let fd = fs.inodes.fd(UInt64(ino)) else { throw FuseError(ENOENT) }
                // A hard link shares the inode, and so the key attribute: both names read the same file.
                try fs.tree.link(fd, as: entry)
                try Operations.replyEntry(request, fs, parent: UInt64(newParent), name: name)
            }
        }
        ops.setxattr = { request, ino, name, value, size, flags in
            Operations.answer(request, "setxattr") {
                let bytes = Array(UnsafeRawBufferPointer(start: value, count: size))
                try Operations.filesystem(request).setAttribute(UInt64(ino), name: String(cString: name!), value: bytes, flags: flags,
                                                                requester: Requester(request))
                fuse_reply_err(request, 0)
            }
        }
        ops.getxattr = { request, ino, name, size in
            Operations.answer(request, "getxattr") {
                let value = try Operations.filesystem(request).attribute(UInt64(ino), name: String(cString: name!), requester: Requester(request))
                try Operations.replyXattr(request, value, size: size)
            }
        }
        ops.listxattr = { request, ino, size in
            Operations.answer(request, "listxattr") {
                let names = try Operations.filesystem(request).attributeNames(UInt64(ino))
                try Operations.replyXattr(request, names.flatMap { Array($0.utf8) + [0] }, size: size)
            }
        }
        ops.removexattr = { request, ino, name in
            Operations.answer(request, "removexattr") {
                try Operations.filesystem(request).removeAttribute(UInt64(ino), name: String(cString: name!), requester: Requester(request))
                fuse_reply_err(request, 0)
            }
        }
        return ops
    }

    /// readdir and readdirplus. readdirplus also looks every entry up (one kernel reference each,
    /// except "." and ".."), so that `ls -l` needs no lookup round trip per name.
    static func listDirectory(_ request: fuse_req_t?, _ directory: UInt64, size: Int, offset: off_t, handle: UInt64, plus: Bool) {
        answer(request, plus ? "readdirplus" : "readdir") {
            let fs = filesystem(request)
            guard let stream = directories.stream(handle) else { throw FuseError(EBADF) }
            guard let directoryFD = fs.inodes.fd(directory) else { throw FuseError(ENOENT) }
            try fs.tree.checkListable(directory, directoryFD: directoryFD)
            withUnsafeTemporaryAllocation(byteCount: max(size, 1), alignment: 8) { buffer in
                let base = buffer.baseAddress!.assumingMemoryBound(to: CChar.self)
                var used = 0
                var unlooked = (0, "")
                defer {
                    if unlooked.0 > 0 {
                        fs.logger.warning("readdirplus: \(unlooked.0) entries of inode \(directory) listed without a lookup: \(unlooked.1)")
                    }
                }
                seekdir(stream.directory, Int(offset))
                while let entry = readdir(stream.directory) {
                    let backingName = FileName(DirectoryEntryName.pointer(entry))
                    let next = off_t(telldir(stream.directory))
                    guard let name = fs.tree.listedName(backingName, in: directory, directoryFD: directoryFD) else { continue }
                    var parameters = fuse_entry_param()
                    parameters.attr.st_ino = entry.pointee.d_ino
                    parameters.attr.st_mode = mode_t(entry.pointee.d_type) << 12
                    var looked: UInt64?
                    // Under descriptor pressure an entry goes without its lookup (the kernel
                    // looks it up when it needs it): a listing would otherwise adopt a whole
                    // directory's inodes at once, faster than the kernel's FORGETs come back.
                    if plus && !name.isDotOrDotDot && !(fs.tree.eviction?.isPressed ?? false) {
                        do {
                            let (id, info) = try fs.tree.lookup(name, in: directory, backingName: backingName)
                            looked = id
                            parameters.ino = fuse_ino_t(id)
                            parameters.attr = fs.plaintextAttributes(info, id: id)
                            parameters.attr_timeout = attributeTimeout
                            parameters.entry_timeout = attributeTimeout
                        } catch let error as FuseError where error.errno == ENOENT {
                            continue  // removed since readdir saw it: no longer part of the listing
                        } catch {
                            // Out of descriptors, say: the name is still listed, without the
                            // lookup (node ID 0 tells the kernel so); a later stat of it gets the
                            // error itself. A listing never silently loses an entry.
                            unlooked = (unlooked.0 + 1, "\(error)")
                        }
                    }
                    let needed = plus
                        ? fuse_add_direntry_plus(request, base + used, size - used, name.cString, &parameters, next)
                        : fuse_add_direntry(request, base + used, size - used, name.cString, &parameters.attr, next)
                    if used + needed > size {
                        // Not sent: the kernel never learns of this lookup, so it is undone.
                        if let looked { fs.inodes.forget(looked, count: 1) }
                        break
                    }
                    used += needed
                }
                fuse_reply_buf(request, base, used)
            }
        }
    }

    /// Answers getxattr/listxattr: the size when asked for it (size 0), else the bytes or ERANGE.
    static func replyXattr(_ request: fuse_req_t?, _ value: [UInt8], size: Int) throws {
        if size == 0 {
            fuse_reply_xattr(request, value.count)
        } else if value.count > size {
            throw FuseError(ERANGE)
        } else {
            fuse_reply_buf(request, value, value.count)
        }
    }

    /// Looks up `name` (just created) and answers with its entry.
    static func replyEntry(_ request: fuse_req_t?, _ fs: Filesystem, parent: UInt64, name: FileName) throws {
        let (id, info) = try fs.tree.lookup(name, in: parent)
        var entry = fuse_entry_param()
        entry.ino = fuse_ino_t(id)
        entry.attr = fs.plaintextAttributes(info, id: id)
        entry.attr_timeout = attributeTimeout
        entry.entry_timeout = attributeTimeout
        fuse_reply_entry(request, &entry)
    }

    /// unlink and rmdir.
    static func removeEntry(_ request: fuse_req_t?, parent: fuse_ino_t, name: UnsafePointer<CChar>?, flags: Int32) {
        answer(request, flags == AT_REMOVEDIR ? "rmdir" : "unlink") {
            let fs = filesystem(request)
            try fs.tree.remove(fs.tree.entry(FileName(name!), in: UInt64(parent), for: .change), flags: flags)
            fuse_reply_err(request, 0)
        }
    }
}
