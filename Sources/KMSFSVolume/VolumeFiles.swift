import Foundation

/// The encrypted files of a backing directory, as the operator tools (fsck, keys, rewrap,
/// shred-report) visit them: regular files only (symbolic links and special files carry no
/// encrypted content), in name order, without the volume's own files, never following a link.
public enum VolumeFiles {
    /// Calls `body` with the path (relative to `cipherDirectory`) of every regular file under
    /// `subtree` (relative too; "" for the whole volume).
    /// - Throws: a directory that cannot be listed, or what `body` throws.
    public static func forEachFile(in cipherDirectory: String, under subtree: String = "",
                                   _ body: (_ path: String, _ info: stat) throws -> Void) throws {
        let start = subtree.split(separator: "/").joined(separator: "/")
        if !start.isEmpty {
            var info = stat()
            guard lstat(cipherDirectory + "/" + start, &info) == 0 else {
                throw VolumeError.io("\(start): \(String(cString: strerror(errno)))")
            }
            if info.st_mode & S_IFMT == S_IFREG { return try body(start, info) }
        }
        try walk(cipherDirectory, start, body)
    }

    private static func walk(_ cipherDirectory: String, _ relative: String, _ body: (String, stat) throws -> Void) throws {
        let directory = relative.isEmpty ? cipherDirectory : cipherDirectory + "/" + relative
        for name in try FileManager.default.contentsOfDirectory(atPath: directory).sorted() {
            if relative.isEmpty && VolumeConfiguration.reservedNames.contains(name) { continue }
            let path = relative.isEmpty ? name : relative + "/" + name
            var info = stat()
            guard lstat(cipherDirectory + "/" + path, &info) == 0 else { continue }  // gone meanwhile
            switch info.st_mode & S_IFMT {
            case S_IFDIR: try walk(cipherDirectory, path, body)
            case S_IFREG: try body(path, info)
            default: continue
            }
        }
    }
}
