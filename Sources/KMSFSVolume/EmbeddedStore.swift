import Foundation
import KMSEngine
import KMSFSCrypto
#if canImport(Glibc)
import Glibc
#endif

/// An embedded key store: a directory outside the backing directory with the SQLite store and
/// what gives its root key. By default beside the volume (`CIPHERDIR.keys`), so that a volume
/// moved together with it keeps working and a restored copy never reaches another copy's store.
///
/// The root key is found through `root-key.json` (``RootKeyRecord``: passphrase, key file
/// elsewhere, systemd credential) or, unprotected, as `root.key` in the clear. A record wins
/// over a `root.key` beside it; either way the engine checks the key against the store.
public struct EmbeddedStore: Sendable, Equatable {
    public let directory: String
    public var storePath: String { path("keys.sqlite") }
    /// The unprotected form: the root key in hex.
    public var rootKeyFile: String { path("root.key") }
    var recordFile: String { path(RootKeyRecord.fileName) }

    public init(directory: String) { self.directory = (directory as NSString).standardizingPath }

    /// `CIPHERDIR.keys`, or the store `options` name.
    public static func of(cipherDirectory: String, options: KeyServiceOptions) -> EmbeddedStore {
        if let keyStore = options.keyStore { return EmbeddedStore(directory: keyStore) }
        let absolute = URL(fileURLWithPath: cipherDirectory).standardizedFileURL.path
        return EmbeddedStore(directory: absolute + ".keys")
    }

    func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    /// How the root key is kept, as commands describe it and decide what to ask for.
    public enum ProtectionKind: Equatable, Sendable, CustomStringConvertible {
        case passphrase
        case keyFile(String)
        case credential(String)
        case unprotected
        /// No root key yet (a new store).
        case none

        public var description: String {
            switch self {
            case .passphrase: return "a passphrase (scrypt)"
            case let .keyFile(path): return "the key file \(path)"
            case let .credential(name): return "the systemd credential \(name)"
            case .unprotected: return "nothing: root.key beside the store, in the clear"
            case .none: return "no root key yet"
            }
        }
    }

    public func protectionKind() throws -> ProtectionKind {
        if let record = try RootKeyRecord.load(path: recordFile) {
            switch record.protection {
            case .passphrase: return .passphrase
            case .keyFile: return .keyFile(record.keyFile ?? "?")
            case .credential: return .credential(record.credential ?? "?")
            }
        }
        return FileManager.default.fileExists(atPath: rootKeyFile) ? .unprotected : .none
    }

    /// The root key, unlocked with what the command was given. A passphrase given for a store
    /// that is not protected by one is refused, not ignored: the store may have been replaced by
    /// one whose keys someone else holds.
    /// - Throws: ``VolumeError/rootKey(_:)`` naming what is missing or wrong.
    public func loadRootKey(_ unlock: RootKeyUnlock) throws -> RootKey {
        try loadRootKey(passphrase: unlock.passphrase?.take(), keyFile: unlock.keyFile)
    }

    /// ``loadRootKey(_:)`` with the passphrase taken already (a rotation's unlock tries it twice).
    func loadRootKey(passphrase: SecretBytes?, keyFile: String?) throws -> RootKey {
        try GuardedFile.checkDirectory(directory, what: "the key store")
        guard let record = try RootKeyRecord.load(path: recordFile) else {
            guard FileManager.default.fileExists(atPath: rootKeyFile) else {
                throw VolumeError.rootKey("the key store \(directory) has no root key (neither \(RootKeyRecord.fileName) nor root.key)")
            }
            try refuseUnused(passphrase, kind: .unprotected)
            return try loadKeyFile(rootKeyFile)
        }
        return try unlocking(record, passphrase: passphrase, keyFile: keyFile)
    }

    /// The key `record` keeps, unlocked with `passphrase`, or read from its key file (`keyFile`
    /// instead, if given) or its credential.
    func unlocking(_ record: RootKeyRecord, passphrase: SecretBytes?, keyFile: String?) throws -> RootKey {
        switch record.protection {
        case .passphrase:
            guard let passphrase else {
                throw VolumeError.rootKey("the key store's root key is protected by a passphrase: give --passphrase-file FILE (or -o passphrase_file=FILE), or run on a terminal to be asked")
            }
            return RootKey(try record.open(passphrase: passphrase))
        case .keyFile:
            guard let path = keyFile ?? record.keyFile else { throw VolumeError.rootKey("the root key record names no key file") }
            try refuseUnused(passphrase, kind: .keyFile(path))
            guard FileManager.default.fileExists(atPath: path) else {
                throw VolumeError.rootKey("the root key file \(path) is not there (kept elsewhere? give --root-key-file PATH)")
            }
            return try loadKeyFile(path)
        case .credential:
            guard let name = record.credential else { throw VolumeError.rootKey("the root key record names no credential") }
            try refuseUnused(passphrase, kind: .credential(name))
            return try SystemdCredential.read(name: name, store: record.credentialStore ?? RootKeyProtection.defaultCredentialStore)
        }
    }

    private func refuseUnused(_ passphrase: SecretBytes?, kind: ProtectionKind) throws {
        guard passphrase != nil else { return }
        throw VolumeError.rootKey("a passphrase was given, but the key store \(directory) is protected by \(kind): refusing (was the store replaced?)")
    }

    /// A root key in a file (hex or raw), checked as a key: a regular file of at most 1 KiB that
    /// only its owner (the caller or root) may read.
    func loadKeyFile(_ path: String) throws -> RootKey {
        let fd = try GuardedFile.open(path, what: "the root key file", maximumSize: 1024, access: .ownerOnly)
        defer { close(fd) }
        do { return try RootKey(loading: .fileDescriptor(fd)) } catch {
            throw VolumeError.rootKey("the root key file \(path) holds no root key (32 raw bytes or 64 hex digits)")
        }
    }

    /// Whether a root.key in the clear lies beside a record (left by an interrupted kmsfs
    /// protect, or planted): it is not used, but a copy of the store carries it.
    public var hasStrayClearKey: Bool {
        FileManager.default.fileExists(atPath: recordFile) && FileManager.default.fileExists(atPath: rootKeyFile)
    }

    /// The engine on this store, its root key unlocked with `unlock`; `schedulerInterval` as
    /// ``KMSEngine/open(path:rootKey:clock:schedulerInterval:)`` (a mount runs due rotations).
    /// An interrupted `kmsfs protect --new-root-key` may have left the store under its new key:
    /// that key, kept as the rotation's new protection says, is given as the next root key.
    public func openEngine(_ unlock: RootKeyUnlock = RootKeyUnlock(), schedulerInterval: Duration? = nil) throws -> KMSEngine {
        let passphrase = unlock.passphrase?.take()
        let root = try loadRootKey(passphrase: passphrase, keyFile: unlock.keyFile)
        let next = (try? pendingKey(passphrase: passphrase, current: root)) ?? nil
        do {
            return try KMSEngine.open(path: storePath, rootKey: root, nextRootKey: next, schedulerInterval: schedulerInterval)
        } catch {
            guard hasPendingRootKey, next == nil else { throw error }
            throw VolumeError.rootKey("\(error) — \(RootKeyRecord.nextFileName) is beside the store: if an interrupted `kmsfs protect --new-root-key` left it, "
                                      + "run that again, with the same --to, to finish; if none was run, the store or that file was put there by someone else")
        }
    }

    /// Keeps `rootKey` as `protection` says, then removes every other form (an unprotected
    /// `root.key` is overwritten before it is unlinked). The record is written first, so a crash
    /// in between leaves a store that still opens.
    public func keep(_ rootKey: RootKey, as protection: RootKeyProtection) throws {
        let previous = try RootKeyRecord.load(path: recordFile)
        guard let record = try record(keeping: rootKey, as: protection) else {
            try Self.writeHex(rootKey, to: rootKeyFile)
            if previous != nil { unlink(recordFile) }
            return
        }
        try record.write(path: recordFile)
        guard Self.shred(rootKeyFile) else {
            throw VolumeError.rootKey("the root key is now protected, but \(rootKeyFile) (the clear copy) could not be removed: remove it by hand")
        }
    }

    /// The record that keeps `rootKey` as `protection` says, its key file or credential written
    /// (and read back) first; nil for ``RootKeyProtection/unprotected``, which has none.
    func record(keeping rootKey: RootKey, as protection: RootKeyProtection) throws -> RootKeyRecord? {
        switch protection {
        case let .passphrase(passphrase):
            let record = try RootKeyRecord.sealing(rootKey.key, passphrase: passphrase)
            guard try record.open(passphrase: passphrase) == rootKey.key else {
                throw VolumeError.rootKey("the sealed root key does not open: nothing was changed")
            }
            return record
        case let .keyFile(path):
            let absolute = Self.absolute(path)
            try Self.refuseKeyFile(absolute, inside: [directory])
            var keyFile = stat(), clear = stat()
            if stat(absolute, &keyFile) == 0, stat(rootKeyFile, &clear) == 0, keyFile.st_dev == clear.st_dev, keyFile.st_ino == clear.st_ino {
                throw VolumeError.rootKey("\(absolute) is the store's own root.key under another name (a hard link): name a file of its own")
            }
            if !FileManager.default.fileExists(atPath: absolute) { try Self.writeHex(rootKey, to: absolute) }
            // Read back as a mount will read it (a filesystem that ignores modes, vfat, fails
            // here, before the clear copy is gone, not at the next mount).
            guard try loadKeyFile(absolute).key == rootKey.key else {
                throw VolumeError.rootKey("\(absolute) exists and holds another key: name a new file (kmsfs creates it 0600)")
            }
            return RootKeyRecord.naming(keyFile: absolute)
        case let .credential(name, store):
            try SystemdCredential.write(rootKey, name: name, store: store)
            guard try SystemdCredential.read(name: name, store: store).key == rootKey.key else {
                throw VolumeError.rootKey("the credential \(name) does not give the root key back: nothing was changed")
            }
            return RootKeyRecord.naming(credential: name, store: store)
        case .unprotected:
            return nil
        }
    }

    /// The key in hex in a new 0600 file; the hex copy is wiped afterwards.
    static func writeHex(_ rootKey: RootKey, to path: String) throws {
        var hex = rootKey.hexEncoded()
        defer { hex.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        try AtomicFile.write(hex, to: path, mode: 0o600)
    }

    /// Overwrites a file with zeros before unlinking it: on a filesystem that writes in place
    /// the old bytes are gone; copies made before (backups, snapshots) still hold them. A file
    /// with other hard links is only unlinked: zeroing it would zero them too (a `cp -al`
    /// backup, or the very key file a mistaken command named).
    /// Returns whether the file is gone (or was never there).
    @discardableResult
    static func shred(_ path: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return unlink(path) == 0 || errno == ENOENT }
        var status = stat()
        if fstat(fd, &status) == 0 && status.st_mode & S_IFMT == S_IFREG && status.st_nlink == 1 && status.st_size > 0 {
            let zeros = [UInt8](repeating: 0, count: Int(status.st_size))
            _ = zeros.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
            fsync(fd)
        }
        close(fd)
        return unlink(path) == 0 || errno == ENOENT
    }

    /// Refuses a key file inside any of `directories` (it would travel with every copy of them)
    /// or that is the store's own root.key. Compared by device and inode, ancestor by ancestor
    /// from the file's existing parent, so symlinks, `..` and bind mounts do not get around it.
    public static func refuseKeyFile(_ path: String, inside directories: [String]) throws {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        var forbidden: [(dev_t, ino_t, String)] = []
        for directory in directories {
            var status = stat()
            if stat(directory, &status) == 0 { forbidden.append((status.st_dev, status.st_ino, directory)) }
        }
        var ancestor = (absolute as NSString).deletingLastPathComponent
        while true {
            var status = stat()
            if stat(ancestor, &status) == 0, let hit = forbidden.first(where: { $0.0 == status.st_dev && $0.1 == status.st_ino }) {
                throw VolumeError.rootKey("the key file \(path) is inside \(hit.2): keep it apart from the volume and its store")
            }
            if ancestor == "/" || ancestor.isEmpty { break }
            ancestor = (ancestor as NSString).deletingLastPathComponent
        }
    }
}
