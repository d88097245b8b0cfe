import CLinux
import Foundation
import KMSFSFormat
#if canImport(Glibc)
import Glibc
#endif

/// The encrypted files of a backing directory, as the operator tools (fsck, keys, rewrap,
/// shred-report, manifest) visit them: regular files only (symbolic links and special files carry
/// no encrypted content), in name order, without the volume's own files.
///
/// The walk goes from directory descriptor to directory descriptor (openat with O_NOFOLLOW,
/// fstatat), never through a whole path: whoever can write the backing directory cannot lead it
/// out of the volume with a symbolic link (in `--path` or in the tree), and a file deeper than
/// PATH_MAX is visited like any other instead of being skipped as if it were gone.
public enum VolumeFiles {
    /// A regular file found by the walk, to be opened relative to its directory.
    public struct Entry {
        /// Relative to the volume's root, for people: the plaintext path when the walk was
        /// given the volume's names, else as stored.
        public let path: String
        /// Relative to the backing directory, as stored (UTF-8 repaired).
        public let backingPath: String
        public let info: stat
        let directory: Int32
        /// Every component of the path as the directories hold them (bytes, NUL-terminated:
        /// names need not be UTF-8), the file's own name last.
        public let components: [[CChar]]
        var name: [CChar] { components.last! }
        /// The path's bytes, components joined by "/".
        public var rawPath: [UInt8] { Array(components.map { $0.dropLast().map { UInt8(bitPattern: $0) } }.joined(separator: [UInt8(ascii: "/")])) }

        /// Opens the file without following a link or blocking on a FIFO planted in its place;
        /// -1 (errno set) on failure, ELOOP/ENXIO/EFTYPE-like refusals included.
        public func open(_ flags: Int32 = O_RDONLY) -> Int32 {
            VolumeFiles.regularFile(openat(directory, name, flags | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK))
        }
    }

    /// Calls `body` with every regular file under `subtree` (relative to the volume's root; ""
    /// for the whole volume). Entries that cannot be examined (a directory that cannot be
    /// opened, a name that cannot be stat'ed) go to `failed` with the reason, never silently
    /// dropped; names that vanish meanwhile (ENOENT) are skipped.
    ///
    /// With `names` (a volume with encrypted names), `subtree` is a plaintext path and entries'
    /// paths are plaintext, decrypted directory by directory as the walk goes (each directory's
    /// ID read once); a name that does not decrypt, or is in a directory without its ID, is shown
    /// as its backing path, marked so. Paths are printable (``PrintableName``).
    /// - Throws: if `cipherDirectory` or `subtree` cannot be reached, or what `body` throws.
    public static func forEachFile(in cipherDirectory: String, under subtree: String = "", names: NameCipher? = nil,
                                   failed: (_ path: String, _ reason: String) -> Void = { _, _ in },
                                   _ body: (Entry) throws -> Void) throws {
        let root = Glibc.open(cipherDirectory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard root >= 0 else { throw VolumeError.io("\(cipherDirectory): \(String(cString: strerror(errno)))") }
        var place = Place(fd: root, backing: "", backingText: "", shown: "", components: [], directoryID: NameCipher.rootDirectoryID)
        defer { if place.fd != root { close(place.fd) }; close(root) }
        let components = subtree.split(separator: "/").map(String.init).filter { $0 != "." }
        guard !components.contains(".."), names != nil || components.first.map({ !VolumeConfiguration.reservedNames.contains($0) }) ?? true else {
            throw VolumeError.io("\(subtree): not a path inside the volume")
        }
        for (index, component) in components.enumerated() {
            let shown = place.shown.map { $0.isEmpty ? PrintableName.escaped(component.utf8) : $0 + "/" + PrintableName.escaped(component.utf8) }
            var stored = Array(component.utf8)
            if let names {
                do { stored = try names.encrypt(stored, directoryID: place.directoryID).entryName } catch {
                    throw VolumeError.io("\(shown ?? component): not a name")
                }
            }
            let name = stored.map { CChar(bitPattern: $0) } + [0]
            var info = stat()
            guard fstatat(place.fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
                throw VolumeError.io("\(shown ?? component): \(String(cString: strerror(errno)))")
            }
            let child = place.child(name, shown: shown)
            if info.st_mode & S_IFMT == S_IFREG, index == components.count - 1 {
                return try body(Entry(path: child.display, backingPath: child.backing, info: info, directory: place.fd, components: child.components))
            }
            guard info.st_mode & S_IFMT == S_IFDIR else { throw VolumeError.io("\(child.display): not a directory or regular file (links are not followed)") }
            let next = openat(place.fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard next >= 0 else { throw VolumeError.io("\(child.display): \(String(cString: strerror(errno)))") }
            if place.fd != root { close(place.fd) }
            place = child
            place.fd = next
            if names != nil {
                guard let id = NamePaths.directoryID(of: next) else { throw VolumeError.io("\(child.display): \(noDirectoryID)") }
                place.directoryID = id
            }
        }
        // With encrypted names every "kmsfs."-prefixed name below is kmsfs's own (long names'
        // side files, directories being made) except a long name's entry: base64url has no '.'.
        let ownNames = (try? VolumeConfiguration.load(cipherDirectory: cipherDirectory))?.nameKey != nil
        try walk(place, names, ownNames, failed, body)
    }

    private static let ownPrefix = Array("kmsfs.".utf8)
    private static let noDirectoryID = "no directory ID, so no name in it decrypts (kmsfs manifest restore puts it back)"

    /// Where the walk is: a directory, its path in the backing store and as shown, and its ID.
    private struct Place {
        var fd: Int32
        /// The backing path as stored (UTF-8 repaired): what the mount's backing-path names.
        var backing: String
        /// The same, printable.
        var backingText: String
        /// The plaintext path, printable; nil once a name on the way did not decrypt, or a
        /// directory had no ID (the backing path is shown from there on, with `unshown`).
        var shown: String?
        var unshown = "a name on it does not decrypt"
        var components: [[CChar]]
        var directoryID: [UInt8]

        /// The place of `name` (NUL-terminated backing bytes), shown as `shown` (nil: as stored).
        func child(_ name: [CChar], shown: String?) -> Place {
            let bytes = name.dropLast().map { UInt8(bitPattern: $0) }
            let text = String(decoding: bytes, as: UTF8.self), printable = PrintableName.escaped(bytes)
            var child = Place(fd: -1, backing: backing.isEmpty ? text : backing + "/" + text,
                              backingText: backingText.isEmpty ? printable : backingText + "/" + printable, shown: shown,
                              components: components + [name], directoryID: directoryID)
            if self.shown == nil { child.unshown = unshown }
            return child
        }

        /// What a person reads for this place.
        var display: String { shown ?? backingText + " (backing path: \(unshown))" }
    }

    private static func walk(_ place: Place, _ names: NameCipher?, _ ownNames: Bool,
                             _ failed: (String, String) -> Void, _ body: (Entry) throws -> Void) throws {
        for name in try sortedNames(in: place.fd, place.display) {
            let bytes = name.dropLast().map { UInt8(bitPattern: $0) }
            if place.backing.isEmpty && VolumeConfiguration.reservedNames.contains(String(decoding: bytes, as: UTF8.self)) { continue }
            if ownNames && bytes.starts(with: ownPrefix) && !NameCipher.isLongEntry(bytes) { continue }
            var shown: String?
            if let prefix = place.shown {
                let plaintext = names.map { try? NamePaths.plaintextName(bytes, in: place.fd, directoryID: place.directoryID, names: $0) } ?? bytes
                shown = plaintext.map { prefix.isEmpty ? PrintableName.escaped($0) : prefix + "/" + PrintableName.escaped($0) }
            }
            var child = place.child(name, shown: shown)
            var info = stat()
            guard fstatat(place.fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
                if errno != ENOENT { failed(child.display, String(cString: strerror(errno))) }
                continue
            }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                child.fd = openat(place.fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard child.fd >= 0 else {
                    if errno != ENOENT { failed(child.display, String(cString: strerror(errno))) }
                    continue
                }
                defer { close(child.fd) }
                if names != nil {
                    // Its files are still walked (counted, checked, saved): under backing paths.
                    if let id = NamePaths.directoryID(of: child.fd) {
                        child.directoryID = id
                    } else if let plaintext = child.shown {
                        child.shown = nil
                        child.unshown = "its directory \(plaintext) has no ID"
                    }
                }
                do { try walk(child, names, ownNames, failed, body) } catch let error as VolumeError { failed(child.display, "\(error)") }
            case S_IFREG: try body(Entry(path: child.display, backingPath: child.backing, info: info, directory: place.fd, components: child.components))
            default: continue
            }
        }
    }

    /// The names in the directory open on `fd` (which stays open), sorted, as NUL-terminated bytes.
    private static func sortedNames(in fd: Int32, _ relative: String) throws -> [[CChar]] {
        let copy = dup(fd)
        guard copy >= 0, let stream = fdopendir(copy) else {
            if copy >= 0 { close(copy) }
            throw VolumeError.io("\(relative.isEmpty ? "." : relative): \(String(cString: strerror(errno)))")
        }
        defer { closedir(stream) }
        var names: [[CChar]] = []
        while let entry = readdir(stream) {
            let name = DirectoryEntryName.bytes(entry)
            if name != [46, 0] && name != [46, 46, 0] { names.append(name) }
        }
        return names.sorted { $0.lexicographicallyPrecedes($1) }
    }

    /// Opens the regular file whose path (relative to `cipherDirectory`) has these components
    /// (NUL-terminated, as ``Entry/components``), following no link at any of them; -1 with errno
    /// set if it is not there or not a regular file. For work done after the walk (in parallel).
    public static func open(_ components: [[CChar]], in cipherDirectory: String, flags: Int32 = O_RDONLY) -> Int32 {
        guard let last = components.last else {
            errno = ENOENT
            return -1
        }
        var directory = Glibc.open(cipherDirectory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { return -1 }
        defer { close(directory) }
        for component in components.dropLast() {
            let next = openat(directory, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard next >= 0 else { return -1 }
            close(directory)
            directory = next
        }
        return regularFile(openat(directory, last, flags | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK))
    }

    /// `fd` if it is a regular file; else closed, and -1 with EINVAL (a FIFO, a device or a
    /// directory planted where a file was).
    static func regularFile(_ fd: Int32) -> Int32 {
        guard fd >= 0 else { return -1 }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            errno = EINVAL
            return -1
        }
        return fd
    }

    /// `rawPath` split back into components, refusing empty, "." and ".." ones.
    public static func components(ofRawPath rawPath: [UInt8]) -> [[CChar]]? {
        let parts = rawPath.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard !parts.isEmpty, !parts.contains(where: { $0.isEmpty || $0.elementsEqual([46]) || $0.elementsEqual([46, 46]) || $0.contains(0) }) else {
            return nil
        }
        return parts.map { $0.map { CChar(bitPattern: $0) } + [0] }
    }
}
