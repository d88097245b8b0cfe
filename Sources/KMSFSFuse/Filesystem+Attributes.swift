import CLinux
import Foundation
import KMSFSVolume
#if canImport(Glibc)
import Glibc
#endif

/// Extended attributes through the mount: the user's own (`user.*`) pass through to the backing
/// file; kmsfs's (`user.kmsfs.*`) are hidden and protected, except two that are meant for users.
///
/// Other namespaces are not stored: `security.*` (SELinux labels, capabilities, IMA), `system.*`
/// (POSIX ACLs, which the kernel would not enforce on this mount) and `trusted.*` would sit in the
/// backing store in plaintext and mean nothing there. They are answered without touching the
/// backing file — EOPNOTSUPP, which coreutils' `ls -l` remembers per filesystem, so a cold
/// `ls -l` stops asking every file for its SELinux label and ACL (two FUSE requests and two backing
/// attribute-block reads per file before) — except `security.capability`, which the kernel asks
/// before every write and which must read as absent (ENODATA).
///
/// - `user.kmsfs.info` (read-only, virtual, on files and directories): what `kmsfs info` says.
///   Not listed, so that `cp -a` and `rsync -X` do not try to copy it.
/// - `user.kmsfs.key-id` (on directories): the default key for new files below, checked with
///   the key service when set. Listed, so that copying a tree keeps its keys.
/// - `user.kmsfs.metrics` (read-only, virtual, on the root): the mount's metrics in
///   Prometheus's text format, for `kmsfs status`; for root and the mount's owner only, as the
///   `metrics=` socket is (on a shared mount, what others do is not every user's to watch).
/// - `user.kmsfs.backing-path` (read-only, virtual): where the node is in the backing directory,
///   relative to it (its encrypted path on a volume with encrypted names), for `kmsfs name
///   encrypt`; for root and the mount's owner only, as the metrics are.
/// - `user.kmsfs.rewrap` (write-only, on files): setting it to a KMS key re-wraps the file's
///   data key under that key (`kmsfs rewrap MOUNTPOINT`), by the daemon that owns the volume.
extension Filesystem {
    static let reservedPrefix = "user.kmsfs."
    static let infoAttribute = "user.kmsfs.info"
    static let rewrapAttribute = "user.kmsfs.rewrap"
    static let metricsAttribute = "user.kmsfs.metrics"
    static let backingPathAttribute = "user.kmsfs.backing-path"

    /// The kernel asks for this before every write (to drop file capabilities). Plaintext files
    /// carry none through kmsfs, and answering without a system call keeps it off the write path.
    static let capabilityAttribute = "security.capability"
    /// The one namespace the mount stores.
    static let storedNamespace = "user."

    func attribute(_ id: UInt64, name: String, requester: Requester) throws -> [UInt8] {
        if name == Self.capabilityAttribute { throw FuseError(ENODATA) }
        guard name.hasPrefix(Self.storedNamespace) else { throw FuseError(EOPNOTSUPP) }
        let (fd, path) = try backingPath(id)
        if name == Self.infoAttribute { return try Array((info(fd: fd, path: path).joined(separator: "\n") + "\n").utf8) }
        if name == Self.metricsAttribute && id == InodeTable.rootID {
            guard requester.uid == 0 || requester.uid == getuid() else { throw FuseError(EACCES) }
            return Array(MountMetrics.text(cache: keys.cacheStatistics, pool: keys.keyPool).utf8.prefix(65536))
        }
        if name == Self.backingPathAttribute {
            guard requester.uid == 0 || requester.uid == getuid() else { throw FuseError(EACCES) }
            return try relativeBackingPath(fd)
        }
        if name.hasPrefix(Self.reservedPrefix) && !(name == DirectoryKey.attributeName && isDirectory(fd)) {
            throw FuseError(ENODATA)
        }
        let stored = try storedAttributeName(name)
        let size = getxattr(path, stored, nil, 0)
        guard size >= 0 else { throw FuseError(errno) }
        var value = [UInt8](repeating: 0, count: size)
        let count = getxattr(path, stored, &value, size)
        guard count >= 0 else { throw FuseError(errno) }
        guard let names = tree.names, !name.hasPrefix(Self.reservedPrefix) else { return Array(value[0..<count]) }
        do { return try names.openAttributeValue(Array(value[0..<count]), storedName: Array(stored.utf8)) } catch {
            logger.error("extended attribute of inode \(id) does not open (changed in the backing store, or moved from another name)")
            throw FuseError(EIO)
        }
    }

    /// The name an attribute is stored under: on a volume with encrypted names, a `user.` name
    /// other than kmsfs's own is sealed (docs/FORMAT.md).
    /// - Throws: ERANGE for a name too long to be stored sealed.
    /// - Throws: for a name too long to be stored sealed, ERANGE when setting it and ENODATA
    ///   otherwise (no such attribute can be there).
    func storedAttributeName(_ name: String, setting: Bool = false) throws -> String {
        guard let names = tree.names, !name.hasPrefix(Self.reservedPrefix) else { return name }
        do { return String(decoding: try names.encryptAttributeName(Array(name.utf8)), as: UTF8.self) } catch {
            throw FuseError(setting ? ERANGE : ENODATA)
        }
    }

    func setAttribute(_ id: UInt64, name: String, value: [UInt8], flags: Int32, requester: Requester) throws {
        guard name.hasPrefix(Self.storedNamespace) else { throw FuseError(EOPNOTSUPP) }
        let (fd, path) = try backingPath(id)
        if name == Self.rewrapAttribute { return try rewrap(fd: fd, to: String(decoding: value, as: UTF8.self), id: id, requester: requester) }
        if name == DirectoryKey.attributeName {
            guard isDirectory(fd) else { throw FuseError(EPERM) }
            guard DirectoryKey.isWellFormed(value) else { throw FuseError(EINVAL) }
            try mayChooseKey(fd, requester: requester)
            let keyID = String(decoding: value, as: UTF8.self)
            // Only keys the volume's authenticated configuration allows: whoever may write a
            // directory must not be able to send its new files to a key of their choosing.
            guard volume.allows(keyID) else {
                logger.warning("refused \(DirectoryKey.attributeName)=\(keyID) on inode \(id) by uid \(requester.uid): not a key this volume allows (kmsfs init --allow-key)")
                throw FuseError(EACCES)
            }
            // A key that cannot make data keys would fail every create below: refuse it now.
            do { _ = try keys.checkKey(keyID) } catch {
                logger.warning("refused \(DirectoryKey.attributeName)=\(keyID) on inode \(id): \(error)")
                throw FuseError(error.errno)
            }
        } else if name.hasPrefix(Self.reservedPrefix) {
            throw FuseError(EPERM)
        }
        let stored = try storedAttributeName(name, setting: true)
        var bytes = value
        if let names = tree.names, stored != name {
            bytes = try names.sealAttributeValue(value, storedName: Array(stored.utf8))
            guard bytes.count <= 65536 else { throw FuseError(E2BIG) }
        }
        guard setxattr(path, stored, bytes, bytes.count, flags) == 0 else { throw FuseError(errno) }
        if name == DirectoryKey.attributeName { directoryKeys.invalidateAll() }
    }

    func removeAttribute(_ id: UInt64, name: String, requester: Requester) throws {
        guard name.hasPrefix(Self.storedNamespace) else { throw FuseError(EOPNOTSUPP) }
        let (fd, path) = try backingPath(id)
        if name.hasPrefix(Self.reservedPrefix) && !(name == DirectoryKey.attributeName && isDirectory(fd)) {
            throw FuseError(EPERM)
        }
        if name == DirectoryKey.attributeName { try mayChooseKey(fd, requester: requester) }
        guard removexattr(path, try storedAttributeName(name)) == 0 else { throw FuseError(errno) }
        if name == DirectoryKey.attributeName { directoryKeys.invalidateAll() }
    }

    func attributeNames(_ id: UInt64) throws -> [String] {
        let (fd, path) = try backingPath(id)
        let total = listxattr(path, nil, 0)
        guard total >= 0 else { throw FuseError(errno) }
        var raw = [CChar](repeating: 0, count: total)
        let count = listxattr(path, &raw, total)
        guard count >= 0 else { throw FuseError(errno) }
        let directory = isDirectory(fd)
        return raw[0..<count].split(separator: 0).map { String(cString: Array($0) + [0]) }
            .filter { $0.hasPrefix(Self.storedNamespace) && (!$0.hasPrefix(Self.reservedPrefix) || ($0 == DirectoryKey.attributeName && directory)) }
            .compactMap { stored in
                // Sealed names that do not open (planted, or another volume's) are not listed.
                guard let names = tree.names, !stored.hasPrefix(Self.reservedPrefix) else { return stored }
                return (try? names.decryptAttributeName(Array(stored.utf8))).map { String(decoding: $0, as: UTF8.self) }
            }
    }

    /// `kmsfs info` for a file or directory of the mount.
    func info(fd: Int32, path: String) throws -> [String] {
        if isDirectory(fd) {
            let key = try directoryKey(fd)
            return FileInfo.directoryLines(keyID: key.keyID, source: key.source)
        }
        var status = stat()
        guard fstatat(fd, "", &status, CLinux_AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 else { throw FuseError(errno) }
        guard status.st_mode & S_IFMT == S_IFREG else { throw FuseError(ENODATA) }
        do { return try FileInfo.read(backingPath: path, cipherDirectory: volume.cipherDirectory, volume: configuration).lines } catch {
            throw FuseError(Self.errorNumber(for: error))
        }
    }

    /// Re-wraps a file's data key under `keyID` (`user.kmsfs.rewrap`): for the file's owner or
    /// root (EPERM), and only to a key the volume's authenticated configuration allows
    /// (EKEYREJECTED, which says which of the two it is to `kmsfs rewrap`) — whoever may
    /// write a file must not be able to hand its key to a KMS key of their choosing. The data key
    /// is unchanged, so open handles and writers carry on; only the key attribute is replaced.
    private func rewrap(fd: Int32, to keyID: String, id: UInt64, requester: Requester) throws {
        try mayChooseKey(fd, requester: requester)
        let destination: String?
        do { destination = keyID.isEmpty ? nil : try volume.allowedKeyARN(keyID) } catch { throw FuseError(Self.errorNumber(for: error)) }
        guard let destination else {
            let shown = DirectoryKey.isWellFormed(Array(keyID.utf8)) ? keyID : "(a malformed value)"
            logger.warning("refused \(Self.rewrapAttribute)=\(shown) on inode \(id) by uid \(requester.uid): not a key this volume allows (kmsfs allow-key)")
            throw FuseError(EKEYREJECTED)  // not EACCES, which the kernel answers to whoever may not write the file
        }
        let file = open("/proc/self/fd/\(fd)", O_RDONLY | O_CLOEXEC)
        guard file >= 0 else { throw FuseError(errno == ELOOP ? EINVAL : errno) }
        defer { close(file) }
        do {
            guard isRegularFile(file) else { throw FuseError(EINVAL) }
            let outcome = try keys.rewrap(fd: file, to: destination)
            if case let .rewrapped(from) = outcome { logger.info("re-wrapped the key of inode \(id) from \(from) under \(keyID)") }
        } catch {
            logger.warning("could not re-wrap the key of inode \(id) under \(keyID): \(error)")
            throw FuseError(Self.errorNumber(for: error))
        }
    }

    /// Only a directory's owner (or root) chooses the key of its new files, whoever else may
    /// write there: EPERM, as for chmod by a non-owner.
    private func mayChooseKey(_ fd: Int32, requester: Requester) throws {
        var status = stat()
        guard fstatat(fd, "", &status, CLinux_AT_EMPTY_PATH) == 0 else { throw FuseError(errno) }
        guard requester.uid == 0 || requester.uid == status.st_uid else { throw FuseError(EPERM) }
    }

    private func backingPath(_ id: UInt64) throws -> (Int32, String) {
        guard let fd = inodes.fd(id) else { throw FuseError(ENOENT) }
        return (fd, "/proc/self/fd/\(fd)")
    }

    /// The node's path below the backing root, as bytes ("." for the root).
    private func relativeBackingPath(_ fd: Int32) throws -> [UInt8] {
        func resolved(_ path: String) throws -> [UInt8] {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let count = readlink(path, &buffer, buffer.count - 1)
            guard count > 0 else { throw FuseError(errno) }
            return buffer.prefix(count).map { UInt8(bitPattern: $0) }
        }
        let root = try resolved("/proc/self/fd/\(inodes.fd(InodeTable.rootID) ?? -1)")
        var status = stat()
        // Unlinked (the kernel's link reads "… (deleted)"): it is nowhere.
        guard fstat(fd, &status) == 0, status.st_nlink > 0 else { throw FuseError(ENOENT) }
        let node = try resolved("/proc/self/fd/\(fd)")
        if node == root { return Array(".".utf8) }
        guard node.starts(with: root + [47]) else { throw FuseError(ENOENT) }  // unlinked ("… (deleted)")
        return Array(node.dropFirst(root.count + 1))
    }

    private func isRegularFile(_ fd: Int32) -> Bool {
        var status = stat()
        return fstat(fd, &status) == 0 && status.st_mode & S_IFMT == S_IFREG
    }

    private func isDirectory(_ fd: Int32) -> Bool {
        var status = stat()
        return fstatat(fd, "", &status, CLinux_AT_EMPTY_PATH) == 0 && status.st_mode & S_IFMT == S_IFDIR
    }
}
