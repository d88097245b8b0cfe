import Foundation
import KMSFSFormat

/// Which KMS keys a volume's files are wrapped under, read from their key attributes alone: no
/// key service, no lock (an attribute is replaced whole, so a mounted volume reads consistently
/// too). What `kmsfs keys`, `kmsfs shred-report` and `kmsfs rewrap --dry-run` print.
public struct KeyInventory: Sendable {
    public struct Usage: Sendable, Equatable {
        public var keyARN: String
        public var files = 0
        /// Bytes the files occupy in the backing store (ciphertext, headers and all).
        public var storedBytes: Int64 = 0
    }

    /// By key ARN.
    public var usage: [String: Usage] = [:]
    /// Files whose key cannot even be named (no attribute, malformed, another file's, no header).
    public var unreadable: [(path: String, reason: String)] = []
    public var files: Int { usage.values.reduce(0) { $0 + $1.files } + unreadable.count }

    /// Scans every file under `subtree`, calling `each` with its path, its stat (nil if it could
    /// not be examined) and key ARN (nil when unreadable) as it goes. With `names`, `subtree` and the paths are plaintext
    /// (``VolumeFiles/forEachFile(in:under:names:failed:_:)``).
    public static func scan(cipherDirectory: String, under subtree: String = "", names: NameCipher? = nil,
                            each: (_ path: String, _ info: stat?, _ keyARN: String?) -> Void = { _, _, _ in }) throws -> KeyInventory {
        var inventory = KeyInventory()
        var bucketKeys: [[UInt8]: String] = [:]  // a bucket's record read once, not once per file
        try VolumeFiles.forEachFile(in: cipherDirectory, under: subtree, names: names, failed: { path, reason in
            inventory.unreadable.append((path, reason))
            each(path, nil, nil)
        }) { entry in
            let (path, info) = (entry.path, entry.info)
            let fd = entry.open()
            guard fd >= 0 else {
                inventory.unreadable.append((path, String(cString: strerror(errno))))
                return each(path, info, nil)
            }
            defer { close(fd) }
            do {
                let stored = try StoredFileKey.read(fd: fd)
                let arn: String
                if case let .bucket(bucket) = stored.attribute, let known = bucketKeys[bucket.bucketID] {
                    arn = known
                } else {
                    arn = try stored.keyARN(cipherDirectory: cipherDirectory)
                    if case let .bucket(bucket) = stored.attribute { bucketKeys[bucket.bucketID] = arn }
                }
                inventory.usage[arn, default: Usage(keyARN: arn)].files += 1
                inventory.usage[arn, default: Usage(keyARN: arn)].storedBytes += Int64(info.st_size)
                each(path, info, arn)
            } catch {
                inventory.unreadable.append((path, "\(error)"))
                each(path, info, nil)
            }
        }
        return inventory
    }

    /// Whether `keyARN` is the key `name` names, where `name` is an ARN or a bare key ID (aliases
    /// need the key service: resolve them first).
    public static func matches(_ keyARN: String, _ name: String) -> Bool {
        keyARN == name || (!name.contains(":") && keyARN.hasSuffix(":key/" + name))
    }
}
