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
            var encoded = component
            if NameCipher.isLongEntry(component) {
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
                encoded = Array(buffer.prefix(count))
            }
            plaintext.append(try names.decrypt(encoded, directoryID: directoryID))
            return component
        }
        return Array(plaintext.joined(separator: [47]))
    }

    /// A backing path as a person should see it: the plaintext path when it decrypts, else the
    /// backing path marked as such (a name edited or moved in the backing store).
    public static func shown(_ backing: String, cipherDirectory: String, names: NameCipher?) -> String {
        guard let names else { return backing }
        guard let plaintext = try? decrypt(Array(backing.utf8), cipherDirectory: cipherDirectory, names: names) else {
            return backing + " (backing path: its name does not decrypt)"
        }
        return String(decoding: plaintext, as: UTF8.self)
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
            var id = [UInt8](repeating: 0, count: DirectoryID.byteCount + 1)
            guard fgetxattr(fd, DirectoryID.attributeName, &id, id.count) == DirectoryID.byteCount else {
                throw VolumeError.io("\(String(decoding: Array(translated.joined(separator: [47])), as: UTF8.self)) has no directory ID")
            }
            directoryID = Array(id.prefix(DirectoryID.byteCount))
        }
        return Array(translated.joined(separator: [47]))
    }
}
