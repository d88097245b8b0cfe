import CLinux
import Foundation
import KMSFSFormat
#if canImport(Glibc)
import Glibc
#endif

/// Paths of a volume with encrypted names, translated offline (`kmsfs name`): component by
/// component from the backing root, each directory's ID read from its attribute, opening
/// nothing by following a link.
public enum NamePaths {
    /// The backing path (relative to the backing root) of a plaintext path.
    public static func encrypt(_ plaintext: [UInt8], cipherDirectory: String, names: NameCipher) throws -> [UInt8] {
        try walk(plaintext, cipherDirectory: cipherDirectory) { component, directoryID, _ in
            try names.encrypt(component, directoryID: directoryID).entryName
        }
    }

    /// The plaintext path of a backing path (relative to the backing root).
    public static func decrypt(_ backing: [UInt8], cipherDirectory: String, names: NameCipher) throws -> [UInt8] {
        var plaintext: [[UInt8]] = []
        _ = try walk(backing, cipherDirectory: cipherDirectory) { component, directoryID, directoryFD in
            plaintext.append(try plaintextName(component, in: directoryFD, directoryID: directoryID, names: names))
            return component
        }
        return Array(plaintext.joined(separator: [47]))
    }

    /// The plaintext of the backing entry `component` of the directory open on `directoryFD`
    /// (whose ID is `directoryID`); a long name's encoded name is read from its side file.
    /// - Throws: ``NameError/undecryptable`` or ``VolumeError/io(_:)`` (a side file missing or
    ///   not its entry's).
    public static func plaintextName(_ component: [UInt8], in directoryFD: Int32, directoryID: [UInt8], names: NameCipher) throws -> [UInt8] {
        guard NameCipher.isLongEntry(component) else { return try names.decrypt(component, directoryID: directoryID) }
        let side = openat(directoryFD, String(decoding: component + NameCipher.sideFileSuffix, as: UTF8.self), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard side >= 0 else { throw VolumeError.io("the side file of \(String(decoding: component, as: UTF8.self)) is missing") }
        defer { close(side) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let count = read(side, &buffer, buffer.count)
        // Only an encoding too long for an entry is stored this way (else a planted long
        // entry would pass for another name).
        guard count > NameCipher.maximumBackingLength, count < buffer.count, NameCipher.hashedName(Array(buffer.prefix(count))) == component else {
            throw VolumeError.io("the side file of \(String(decoding: component, as: UTF8.self)) does not match it")
        }
        return try names.decrypt(Array(buffer.prefix(count)), directoryID: directoryID)
    }

    /// The ID of the directory open on `fd`, or nil if it has none (an attribute lost in a copy).
    public static func directoryID(of fd: Int32) -> [UInt8]? {
        var id = [UInt8](repeating: 0, count: DirectoryID.byteCount + 1)
        guard fgetxattr(fd, DirectoryID.attributeName, &id, id.count) == DirectoryID.byteCount else { return nil }
        return Array(id.prefix(DirectoryID.byteCount))
    }

    /// Calls `step` for each component with the ID of the directory it is in and that
    /// directory's descriptor; `step` returns the backing name to descend into.
    private static func walk(_ path: [UInt8], cipherDirectory: String,
                             _ step: ([UInt8], [UInt8], Int32) throws -> [UInt8]) throws -> [UInt8] {
        let components = path.split(separator: 47).map(Array.init).filter { $0 != [46] }
        guard !components.contains([46, 46]) else { throw VolumeError.io("a path with '..' is not translated") }
        var fd = open(cipherDirectory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw VolumeError.io("\(cipherDirectory): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var directoryID = NameCipher.rootDirectoryID
        var translated: [[UInt8]] = []
        for (index, component) in components.enumerated() {
            let backing = try step(component, directoryID, fd)
            translated.append(backing)
            guard index < components.count - 1 else { break }
            let next = openat(fd, String(decoding: backing, as: UTF8.self), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard next >= 0 else { throw VolumeError.io("\(String(decoding: Array(translated.joined(separator: [47])), as: UTF8.self)): \(String(cString: strerror(errno)))") }
            close(fd)
            fd = next
            guard let id = Self.directoryID(of: fd) else {
                throw VolumeError.io("\(String(decoding: Array(translated.joined(separator: [47])), as: UTF8.self)) has no directory ID")
            }
            directoryID = id
        }
        return Array(translated.joined(separator: [47]))
    }
}
