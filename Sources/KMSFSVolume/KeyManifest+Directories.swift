import CLinux
import Foundation
import KMSFSCrypto
import KMSFSFormat
#if canImport(Glibc)
import Glibc
#endif

/// Directory IDs in the key manifest (volumes with encrypted names): a copy that dropped
/// extended attributes loses every name of a directory with its ID, as it loses file keys;
/// `kmsfs manifest restore` puts both back.
extension KeyManifest {
    public struct Directory: Codable, Sendable, Equatable {
        /// The backing path's bytes, base64 (what restore opens).
        public var rawPath: String
        /// The ID, hex.
        public var directoryID: String
    }

    /// Every backing directory below the root with its ID (none on volumes with plaintext names).
    static func directoryIDs(cipherDirectory: String) throws -> [Directory] {
        let root = open(cipherDirectory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard root >= 0 else { throw VolumeError.io("\(cipherDirectory): \(String(cString: strerror(errno)))") }
        defer { close(root) }
        var found: [Directory] = []
        func walk(_ fd: Int32, _ prefix: [UInt8]) {
            let copy = dup(fd)
            guard copy >= 0, let stream = fdopendir(copy) else { if copy >= 0 { close(copy) }; return }
            var names: [[CChar]] = []
            while let record = readdir(stream) { names.append(DirectoryEntryName.bytes(record)) }
            closedir(stream)
            for name in names where name != [46, 0] && name != [46, 46, 0] && !name.starts(with: "kmsfs.".utf8.map { CChar(bitPattern: $0) }) {
                let child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard child >= 0 else { continue }
                defer { close(child) }
                let path = prefix + name.dropLast().map { UInt8(bitPattern: $0) }
                var id = [UInt8](repeating: 0, count: DirectoryID.byteCount + 1)
                if fgetxattr(child, DirectoryID.attributeName, &id, id.count) == DirectoryID.byteCount {
                    found.append(Directory(rawPath: Data(path).base64EncodedString(), directoryID: hex(Array(id.prefix(DirectoryID.byteCount)))))
                }
                walk(child, path + [47])
            }
        }
        walk(root, [])
        return found.sorted { $0.rawPath < $1.rawPath }
    }

    /// Opens a backing directory by its components, following no link; -1 if it is not there.
    static func openDirectory(_ components: [[CChar]], in cipherDirectory: String) -> Int32 {
        var fd = open(cipherDirectory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        for component in components where fd >= 0 {
            let next = openat(fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            close(fd)
            fd = next
        }
        return fd
    }

    /// Puts back missing directory IDs, never over a different one.
    func restoreDirectoryIDs(cipherDirectory: String, into report: inout RestoreReport) throws {
        for directory in directories ?? [] {
            guard let raw = Data(base64Encoded: directory.rawPath), let components = VolumeFiles.components(ofRawPath: Array(raw)),
                  let id = unhex(directory.directoryID), id.count == DirectoryID.byteCount else {
                throw VolumeError.tamperedConfiguration("the manifest has a malformed directory")
            }
            let shown = String(decoding: raw, as: UTF8.self)
            let fd = Self.openDirectory(components, in: cipherDirectory)
            guard fd >= 0 else {
                report.missing.append(shown)
                continue
            }
            defer { close(fd) }
            var existing = [UInt8](repeating: 0, count: DirectoryID.byteCount + 1)
            let count = fgetxattr(fd, DirectoryID.attributeName, &existing, existing.count)
            if count >= 0 {
                if Array(existing.prefix(count)) == id { report.alreadyThere += 1 } else { report.conflicts.append(shown) }
                continue
            }
            guard errno == ENODATA, fsetxattr(fd, DirectoryID.attributeName, id, id.count, Int32(XATTR_CREATE)) == 0 else {
                throw StorageError(errno: errno, operation: "fsetxattr \(shown)")
            }
            report.directoriesRestored += 1
        }
    }
}
