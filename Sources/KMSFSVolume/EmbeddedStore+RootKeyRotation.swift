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
/// The store and the protection change in two steps that cannot be one, so the new key is kept
/// first, beside the current one, as the new protection says (`root-key.next.json`, or
/// `root.key.next` for a store that stays unprotected); then the store is rotated (one SQLite
/// transaction); then that record replaces the current one (a rename). Interrupted anywhere, the
/// store opens — under its old key, or under the new one given as the engine's next root key —
/// and running the command again with the same `--to` finishes it.
extension EmbeddedStore {
    var pendingRecordFile: String { path(RootKeyRecord.nextFileName) }
    var pendingClearFile: String { path("root.key.next") }

    /// Whether an interrupted rotation left its new key beside the store.
    public var hasPendingRootKey: Bool {
        FileManager.default.fileExists(atPath: pendingRecordFile) || FileManager.default.fileExists(atPath: pendingClearFile)
    }

    /// Rotates the store's root key (unlocked with `unlock`) to a new one kept as `protection`
    /// says; finishes an interrupted rotation instead if one left its key. Returns what the
    /// rotation did (nil: the store had been rotated already, by the interrupted run).
    public func rotateRootKey(_ unlock: RootKeyUnlock, to protection: RootKeyProtection) throws -> RootKeyRotation? {
        let previous = try RootKeyRecord.load(path: recordFile)
        try refuseOverwritingCurrent(previous, with: protection)
        let current = try loadRootKey(passphrase: unlock.passphrase?.take(), keyFile: unlock.keyFile)
        let next: RootKey
        if let pending = try pendingKey(for: protection) {
            next = pending
        } else {
            next = try RootKey.generate()
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

    /// The new key can only be kept beside the current one, never over it: until the rotation
    /// is done, the current key is the only one that opens the store.
    private func refuseOverwritingCurrent(_ previous: RootKeyRecord?, with protection: RootKeyProtection) throws {
        switch protection {
        case .unprotected where previous != nil:
            throw VolumeError.rootKey("--new-root-key with --to unprotected is for a store that is unprotected already: "
                                      + "rotate under a protection, then run kmsfs protect --to unprotected")
        case let .credential(name, store) where previous?.protection == .credential && previous?.credential == name
            && (previous?.credentialStore ?? RootKeyProtection.defaultCredentialStore) == store:
            throw VolumeError.rootKey("the credential \(name) holds the current root key: name a new credential for the new one")
        default:
            return
        }
    }

    /// Writes the new key's record (its key file or credential first) beside the current one.
    func keepPending(_ next: RootKey, as protection: RootKeyProtection) throws {
        if let record = try record(keeping: next, as: protection) {
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
        switch protection {
        case .unprotected:
            guard FileManager.default.fileExists(atPath: pendingClearFile) else { throw mismatch }
            return try loadKeyFile(pendingClearFile)
        case let .passphrase(passphrase):
            guard let record = try RootKeyRecord.load(path: pendingRecordFile), record.protection == .passphrase,
                  let key = try? unlocking(record, passphrase: passphrase, keyFile: nil) else { throw mismatch }
            return key
        case let .keyFile(path):
            guard let record = try RootKeyRecord.load(path: pendingRecordFile), record.protection == .keyFile,
                  record.keyFile == URL(fileURLWithPath: path).standardizedFileURL.path else { throw mismatch }
            return try unlocking(record, passphrase: nil, keyFile: nil)
        case let .credential(name, _):
            guard let record = try RootKeyRecord.load(path: pendingRecordFile), record.protection == .credential,
                  record.credential == name else { throw mismatch }
            return try unlocking(record, passphrase: nil, keyFile: nil)
        }
    }

    /// The key an interrupted rotation left, if what unlocks the current key unlocks it too (the
    /// same passphrase; a key file or credential, which need nothing): for ``openEngine(_:schedulerInterval:)``.
    /// A clear `root.key.next` counts only beside a store that is unprotected already.
    func pendingKey(passphrase: SecretBytes?) throws -> RootKey? {
        if let record = try RootKeyRecord.load(path: pendingRecordFile) {
            return try unlocking(record, passphrase: passphrase, keyFile: nil)
        }
        guard try RootKeyRecord.load(path: recordFile) == nil, FileManager.default.fileExists(atPath: pendingClearFile) else { return nil }
        return try loadKeyFile(pendingClearFile)
    }

    /// The new key's record takes the current one's place (a rename, synced); a clear root.key
    /// of the store's unprotected past is shredded.
    private func promotePending(_ protection: RootKeyProtection) throws {
        let (from, to) = FileManager.default.fileExists(atPath: pendingRecordFile) ? (pendingRecordFile, recordFile) : (pendingClearFile, rootKeyFile)
        guard rename(from, to) == 0 else {
            throw VolumeError.io("the store is rotated, but \(from) could not replace \(to): \(String(cString: strerror(errno))); run the command again")
        }
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
        if to == recordFile, !Self.shred(rootKeyFile) {
            throw VolumeError.rootKey("the root key is rotated and protected, but \(rootKeyFile) (the old key, in the clear) could not be removed: remove it by hand")
        }
    }
}
