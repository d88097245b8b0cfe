import Foundation
import KMSEngine
import KMSFSCrypto
#if canImport(Glibc)
import Glibc
#endif

/// `kmsfs protect --new-root-key`: the embedded store moves to a new root key (every sealed row
/// sealed again, every record MAC'ed again: ``KMSEngine/rotateRootKey(to:)``), kept as the new
/// protection says. For when the old key, or what protected it, may be known to someone else.
///
/// The store and the protection change in steps that cannot be one, so:
/// 1. the current key is proven against the store (nothing is written for a wrong one);
/// 2. the new key is kept first, beside the current one, as the new protection says (its key
///    file or credential, then `root-key.next.json`; or `root.key.next` for a store that stays
///    unprotected) — an existing key file or credential of that name is taken as the new key,
///    so that a run stopped after writing it is finished, not refused;
/// 3. the store is rotated (one SQLite transaction);
/// 4. that record replaces the current one (a rename), and a clear old key is shredded.
/// Interrupted anywhere, the store opens — under its old key, or under the new one given as the
/// engine's next root key — and the same command run again finishes it.
extension EmbeddedStore {
    var pendingRecordFile: String { path(RootKeyRecord.nextFileName) }
    var pendingClearFile: String { path("root.key.next") }
    /// The clear root key an unprotected store's rotation replaces, kept only to be shredded.
    var replacedClearFile: String { path("root.key.old") }

    /// Whether an interrupted rotation left its new key beside the store.
    public var hasPendingRootKey: Bool {
        FileManager.default.fileExists(atPath: pendingRecordFile) || FileManager.default.fileExists(atPath: pendingClearFile)
    }

    /// Rotates the store's root key (unlocked with `unlock`) to a new one kept as `protection`
    /// says; finishes an interrupted rotation instead if one left its key. Returns what the
    /// rotation did (nil: the store had been rotated already, by an interrupted run).
    public func rotateRootKey(_ unlock: RootKeyUnlock, to protection: RootKeyProtection) throws -> RootKeyRotation? {
        shredLeftovers()
        let previous = try RootKeyRecord.load(path: recordFile)
        let passphrase = unlock.passphrase?.take()
        if try finishedBefore(previous, protection, passphrase: passphrase) { return nil }
        try refuseOverwritingCurrent(previous, with: protection)
        let current = try loadRootKey(passphrase: passphrase, keyFile: unlock.keyFile)
        let next: RootKey
        if let pending = try pendingKey(for: protection) {
            next = pending
        } else {
            // Nothing is written for a key that is not this store's, nor for a new key the
            // rotation would refuse (the current key, or one the store had before).
            let engine = try KMSEngine.open(path: storePath, rootKey: current, schedulerInterval: nil)
            next = try newKey(for: protection)
            do { try engine.checkNextRootKey(next) } catch {
                throw VolumeError.rootKey("\(protection.name) holds a key this store cannot take as its new root key (\(error)): name a new one")
            }
            try keepPending(next, as: protection)
        }
        var rotation: RootKeyRotation?
        do {
            // Under the old key, or under the new one if the interrupted run got that far.
            let engine = try KMSEngine.open(path: storePath, rootKey: current, nextRootKey: next, schedulerInterval: nil)
            if engine.rootKeyIdentifier == current.identifier { rotation = try engine.rotateRootKey(to: next) }
            try engine.flushAudit()
        }
        try promotePending(protection)
        return rotation
    }

    /// Whether a run stopped after its record replaced the current one, and this run is the
    /// same command: the record is the one asked for (the same key file or credential; a new
    /// passphrase that opens it while the one given for the current key does not). Then only a
    /// clear old key may be left, and is shredded.
    private func finishedBefore(_ previous: RootKeyRecord?, _ protection: RootKeyProtection, passphrase: SecretBytes?) throws -> Bool {
        guard !hasPendingRootKey, let previous else { return false }
        switch protection {
        case let .keyFile(path):
            guard previous.protection == .keyFile, previous.keyFile == Self.absolute(path),
                  FileManager.default.fileExists(atPath: rootKeyFile) else { return false }
        case let .credential(name, store):
            guard previous.protection == .credential, previous.credential == name,
                  previous.credentialStore ?? RootKeyProtection.defaultCredentialStore == store,
                  FileManager.default.fileExists(atPath: rootKeyFile) else { return false }
        case let .passphrase(new):
            guard previous.protection == .passphrase, let passphrase, (try? previous.open(passphrase: passphrase)) == nil,
                  (try? previous.open(passphrase: new)) != nil else { return false }
        case .unprotected:
            return false
        }
        guard Self.shred(rootKeyFile) else {
            throw VolumeError.rootKey("the root key is rotated and protected, but \(rootKeyFile) (the old key, in the clear) could not be removed: remove it by hand")
        }
        return true
    }

    /// The new key can only be kept beside the current one, never over it: until the rotation
    /// is done, the current key is the only one that opens the store.
    private func refuseOverwritingCurrent(_ previous: RootKeyRecord?, with protection: RootKeyProtection) throws {
        switch protection {
        case .unprotected where previous != nil:
            throw VolumeError.rootKey("--new-root-key with --to unprotected is for a store that is unprotected already: "
                                      + "rotate under a protection, then run kmsfs protect --to unprotected")
        case let .keyFile(path) where previous?.protection == .keyFile && previous?.keyFile == Self.absolute(path):
            throw VolumeError.rootKey("the key file \(path) holds the current root key: name a new file for the new one")
        case let .credential(name, store) where previous?.protection == .credential && previous?.credential == name
            && (previous?.credentialStore ?? RootKeyProtection.defaultCredentialStore) == store:
            throw VolumeError.rootKey("the credential \(name) holds the current root key: name a new credential for the new one")
        default:
            return
        }
    }

    /// A new key; or, where the new protection names a key file or credential that exists (a run
    /// stopped after writing it, or one the operator made), the key it holds.
    private func newKey(for protection: RootKeyProtection) throws -> RootKey {
        switch protection {
        case let .keyFile(path) where FileManager.default.fileExists(atPath: Self.absolute(path)):
            return try loadKeyFile(Self.absolute(path))
        case let .credential(name, store) where FileManager.default.fileExists(atPath: (store as NSString).appendingPathComponent(name)):
            do { return try SystemdCredential.read(name: name, store: store) } catch {
                throw VolumeError.rootKey("the credential \(name) exists in \(store) but gives no key (\(error)): remove it, or name another")
            }
        default:
            return try RootKey.generate()
        }
    }

    /// Writes the new key's record (its key file or credential first, unless they hold it
    /// already) beside the current one.
    func keepPending(_ next: RootKey, as protection: RootKeyProtection) throws {
        if case let .credential(name, store) = protection, FileManager.default.fileExists(atPath: (store as NSString).appendingPathComponent(name)) {
            try RootKeyRecord.naming(credential: name, store: store).write(path: pendingRecordFile)
        } else if let record = try record(keeping: next, as: protection) {
            try record.write(path: pendingRecordFile)
        } else {
            try Self.writeHex(next, to: pendingClearFile)
        }
    }

    /// The key an interrupted rotation left, opened as `protection` says; nil if none was left.
    /// - Throws: ``VolumeError/rootKey(_:)`` if one was left that `protection` does not open.
    private func pendingKey(for protection: RootKeyProtection) throws -> RootKey? {
        guard hasPendingRootKey else { return nil }
        let mismatch = VolumeError.rootKey("an interrupted rotation left \(RootKeyRecord.nextFileName) (or root.key.next), which does not open "
                                           + "with what was given: give the same --to (and new passphrase) as that run")
        let record = try RootKeyRecord.load(path: pendingRecordFile)
        switch protection {
        case .unprotected:
            guard FileManager.default.fileExists(atPath: pendingClearFile) else { throw mismatch }
            return try loadKeyFile(pendingClearFile)
        case let .passphrase(passphrase):
            guard let record, record.protection == .passphrase,
                  let key = try? unlocking(record, passphrase: passphrase, keyFile: nil) else { throw mismatch }
            return key
        case let .keyFile(path):
            guard let record, record.protection == .keyFile, record.keyFile == Self.absolute(path) else { throw mismatch }
            return try unlocking(record, passphrase: nil, keyFile: nil)
        case let .credential(name, store):
            guard let record, record.protection == .credential, record.credential == name,
                  (record.credentialStore ?? RootKeyProtection.defaultCredentialStore) == store else { throw mismatch }
            return try unlocking(record, passphrase: nil, keyFile: nil)
        }
    }

    /// The key an interrupted rotation left, if what unlocks the current key unlocks it too (the
    /// same passphrase; a key file or credential, which need nothing): for ``openEngine(_:schedulerInterval:)``.
    /// A clear `root.key.next` counts only beside a store that is unprotected already.
    func pendingKey(passphrase: SecretBytes?) throws -> RootKey? {
        if let record = try RootKeyRecord.load(path: pendingRecordFile) {
            return try unlocking(record, passphrase: record.protection == .passphrase ? passphrase : nil, keyFile: nil)
        }
        guard try RootKeyRecord.load(path: recordFile) == nil, FileManager.default.fileExists(atPath: pendingClearFile) else { return nil }
        return try loadKeyFile(pendingClearFile)
    }

    /// The new key's record takes the current one's place (a rename, synced), and a clear old
    /// key is shredded; for a store that stays unprotected, `root.key.next` takes root.key's
    /// place, and the old root.key (kept under another name for that) is shredded.
    private func promotePending(_ protection: RootKeyProtection) throws {
        let (from, to) = if case .unprotected = protection { (pendingClearFile, rootKeyFile) } else { (pendingRecordFile, recordFile) }
        if to == rootKeyFile { _ = link(rootKeyFile, replacedClearFile) }
        guard rename(from, to) == 0 else {
            throw VolumeError.io("the store is rotated, but \(from) could not replace \(to): \(String(cString: strerror(errno))); run the command again")
        }
        Self.syncDirectory(directory)
        // The other kind of pending file is no run's of this form (planted, or left by another).
        unlink(to == rootKeyFile ? pendingRecordFile : pendingClearFile)
        let stray = to == rootKeyFile ? replacedClearFile : rootKeyFile
        guard Self.shred(stray) else {
            throw VolumeError.rootKey("the root key is rotated, but \(stray) (the old key, in the clear) could not be removed: remove it by hand")
        }
        shredLeftovers()
    }

    /// What interrupted runs may leave: temporary copies of the new key's files (a clear one, for
    /// a store that stays unprotected), a replaced clear key, the other kind of pending file.
    private func shredLeftovers() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names where name.hasPrefix(RootKeyRecord.nextFileName + ".tmp-") || name.hasPrefix("root.key.next.tmp-")
            || name == "root.key.old" {
            Self.shred(path(name))
        }
    }

    static func absolute(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.path }

    static func syncDirectory(_ directory: String) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}

extension RootKeyProtection {
    /// How messages name where a key is kept.
    var name: String {
        switch self {
        case .passphrase: return "the passphrase"
        case let .keyFile(path): return "the key file \(path)"
        case let .credential(name, _): return "the credential \(name)"
        case .unprotected: return "root.key"
        }
    }
}
