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
/// 1. the current key is proven against the store (nothing is written for a wrong one), and a
///    clear old key beside its record is shredded;
/// 2. the new key's record is written beside the current one (`root-key.next.json`, MAC'ed under
///    the current key, so that one planted there is not taken), then its key file or credential
///    — never one that exists: it could hold another volume's key; for a store that stays
///    unprotected, `root.key.next`;
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
        if case .unprotected = protection, previous != nil {
            throw VolumeError.rootKey("--new-root-key with --to unprotected is for a store that is unprotected already: "
                                      + "rotate under a protection, then run kmsfs protect --to unprotected")
        }
        let current = try loadRootKey(passphrase: unlock.passphrase?.take(), keyFile: unlock.keyFile)
        let pending = try pendingKey(for: protection, current: current)
        let next: RootKey
        do {
            // Nothing is written for a key that is not this store's.
            let engine = try KMSEngine.open(path: storePath, rootKey: current, nextRootKey: pending, schedulerInterval: nil)
            if previous != nil, engine.rootKeyIdentifier == current.identifier, !Self.shred(rootKeyFile) {
                throw VolumeError.rootKey("\(rootKeyFile) (an old key, in the clear) could not be removed: remove it by hand")
            }
            if let pending {
                next = pending
            } else {
                try refuseOverwritingCurrent(previous, with: protection)
                try refuseExisting(protection)
                next = try RootKey.generate()
                try engine.checkNextRootKey(next)
                try keepPending(next, as: protection, current: current)
            }
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

    /// The new key can only be kept beside the current one, never over it: until the rotation
    /// is done, the current key is the only one that opens the store.
    private func refuseOverwritingCurrent(_ previous: RootKeyRecord?, with protection: RootKeyProtection) throws {
        switch protection {
        case let .keyFile(path) where previous?.protection == .keyFile && previous?.keyFile == Self.absolute(path):
            throw VolumeError.rootKey("the key file \(path) holds the store's current root key (after a finished rotation, the new one): "
                                      + "name a new file for a new key")
        case let .credential(name, store) where previous?.protection == .credential && previous?.credential == name
            && (previous?.credentialStore ?? RootKeyProtection.defaultCredentialStore) == store:
            throw VolumeError.rootKey("the credential \(name) holds the store's current root key (after a finished rotation, the new one): "
                                      + "name a new credential for a new key")
        default:
            return
        }
    }

    /// A key file or credential that exists is not taken for the new key: it may hold another
    /// volume's key, which this one would then depend on.
    private func refuseExisting(_ protection: RootKeyProtection) throws {
        switch protection {
        case let .keyFile(path) where FileManager.default.fileExists(atPath: Self.absolute(path)):
            throw VolumeError.rootKey("\(path) exists: name a new file for the new root key (kmsfs creates it 0600)")
        case let .credential(name, store) where FileManager.default.fileExists(atPath: (store as NSString).appendingPathComponent(name)):
            throw VolumeError.rootKey("the credential \(name) exists in \(store): name a new credential for the new root key")
        default:
            return
        }
    }

    /// Writes the new key's record, naming the key by its identifier and MAC'ed under the
    /// current key, beside the current one; then its key file or credential. (A store that stays
    /// unprotected: `root.key.next`.)
    func keepPending(_ next: RootKey, as protection: RootKeyProtection, current: RootKey) throws {
        var record: RootKeyRecord
        switch protection {
        case .unprotected:
            return try Self.writeHex(next, to: pendingClearFile)
        case .passphrase:
            guard let sealed = try self.record(keeping: next, as: protection) else { return }
            record = sealed
        case let .keyFile(path):
            record = RootKeyRecord.naming(keyFile: Self.absolute(path))
        case let .credential(name, store):
            record = RootKeyRecord.naming(credential: name, store: store)
        }
        record.keyIdentifier = next.identifier
        try record.authenticated(under: current).write(path: pendingRecordFile)
        if record.protection != .passphrase { _ = try self.record(keeping: next, as: protection) }
    }

    /// The new key's record an interrupted run left, if it is this store's (its MAC verifies
    /// under the current key).
    private func pendingRecord(current: RootKey) throws -> RootKeyRecord? {
        guard let record = try RootKeyRecord.load(path: pendingRecordFile), record.isAuthenticated(under: current) else { return nil }
        return record
    }

    /// The key an interrupted rotation left, opened as `protection` says; nil if none was left.
    /// A key file or credential its record names that was not written yet is written now (the
    /// store is rotated only after it is).
    /// - Throws: ``VolumeError/rootKey(_:)`` if one was left that `protection` does not open, or
    ///   that is not this store's.
    private func pendingKey(for protection: RootKeyProtection, current: RootKey) throws -> RootKey? {
        guard hasPendingRootKey else { return nil }
        let mismatch = VolumeError.rootKey("an interrupted rotation left \(RootKeyRecord.nextFileName) (or root.key.next), which does not open "
                                           + "with what was given: give the same --to (and new passphrase) as that run, or remove it if no "
                                           + "such run was made")
        if case .unprotected = protection {
            guard FileManager.default.fileExists(atPath: pendingClearFile) else { throw mismatch }
            return try loadKeyFile(pendingClearFile)
        }
        guard let record = try pendingRecord(current: current) else { throw mismatch }
        switch protection {
        case let .passphrase(passphrase):
            guard record.protection == .passphrase, let key = try? unlocking(record, passphrase: passphrase, keyFile: nil) else { throw mismatch }
            return key
        case let .keyFile(path):
            guard record.protection == .keyFile, record.keyFile == Self.absolute(path) else { throw mismatch }
        case let .credential(name, store):
            guard record.protection == .credential, record.credential == name,
                  (record.credentialStore ?? RootKeyProtection.defaultCredentialStore) == store else { throw mismatch }
        case .unprotected:
            throw mismatch
        }
        let named = (try? unlocking(record, passphrase: nil, keyFile: nil)).flatMap { $0.identifier == record.keyIdentifier ? $0 : nil }
        if let named { return named }
        // Stopped between the record and its key file or credential (the store is rotated only
        // after both): a new key, and a new record naming it. A key file or credential that
        // appeared meanwhile, not the one the record names, is refused.
        try refuseExisting(protection)
        let next = try RootKey.generate()
        try keepPending(next, as: protection, current: current)
        return next
    }

    /// The key an interrupted rotation left, if its record is this store's (MAC'ed under
    /// `current`) and what unlocked the current key unlocks it too (the same passphrase; a key
    /// file or credential, which need nothing): for ``openEngine(_:schedulerInterval:)``. A clear
    /// `root.key.next` counts only beside a store that is unprotected already.
    func pendingKey(passphrase: SecretBytes?, current: RootKey) throws -> RootKey? {
        if let record = try pendingRecord(current: current) {
            let key = try unlocking(record, passphrase: record.protection == .passphrase ? passphrase : nil, keyFile: nil)
            return key.identifier == record.keyIdentifier ? key : nil
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

    /// What interrupted runs may leave in the store: temporary copies of the new key's files (a
    /// clear one, for a store that stays unprotected) and a replaced clear key.
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
