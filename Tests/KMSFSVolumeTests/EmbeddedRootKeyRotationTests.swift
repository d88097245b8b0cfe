import Foundation
import KMSClient
import KMSEngine
import KMSFSCrypto
@testable import KMSFSVolume
import Testing

/// `kmsfs protect --new-root-key` on an embedded store: the keys in it outlive the rotation,
/// only the new root key opens the store afterwards, and a rotation interrupted at either of its
/// two steps leaves a store that opens and that the same command finishes.
@Suite struct EmbeddedRootKeyRotationTests {
    final class Scratch {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kmsfs-rotate-\(UUID().uuidString)").path
        var cipher: String { path + "/cipher" }
        init() throws { try FileManager.default.createDirectory(atPath: path + "/usb", withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    let scratch: Scratch
    let store: EmbeddedStore
    let configuration: VolumeConfiguration
    let oldKey: RootKey

    init() throws {
        scratch = try Scratch()
        configuration = try VolumeInitializer.initialize(cipherDirectory: scratch.cipher, options: .init())
        store = EmbeddedStore.of(cipherDirectory: scratch.cipher, options: .init())
        oldKey = try store.loadRootKey(RootKeyUnlock())
    }

    func client(_ engine: KMSEngine) throws -> EmbeddedKMSClient {
        guard case let .embedded(embedded) = configuration.keyService else { throw VolumeError.rootKey("not embedded") }
        return EmbeddedKMSClient(engine: engine, caller: Caller(account: embedded.account, region: embedded.region, viaService: "kmsfs"))
    }

    var context: [String: String] { ["kmsfs:volume": configuration.volumeID] }

    /// A data key made before, and the wrapped copy a file keeps of it.
    func dataKey() throws -> (plaintext: [UInt8], wrapped: [UInt8]) {
        let key = try client(try store.openEngine()).generateDataKey(keyID: configuration.defaultKeyID, context: context)
        return (key.plaintext.withUnsafeBytes { Array($0) }, key.ciphertextBlob)
    }

    func unwraps(_ key: (plaintext: [UInt8], wrapped: [UInt8]), _ unlock: RootKeyUnlock = RootKeyUnlock()) throws -> Bool {
        try client(try store.openEngine(unlock)).decrypt(ciphertextBlob: key.wrapped, context: context, keyID: nil).withUnsafeBytes { Array($0) } == key.plaintext
    }

    static func passphrase(_ text: String) -> SecretBytes {
        var bytes = Array(text.utf8)
        return SecretBytes(wiping: &bytes)
    }

    @Test func aRotatedStoreKeepsItsKeysAndOpensUnderTheNewKeyOnly() throws {
        let key = try dataKey()
        let keyFile = scratch.path + "/usb/new.key"
        let rotation = try #require(try store.rotateRootKey(RootKeyUnlock(), to: .keyFile(keyFile)))
        #expect(rotation.from == oldKey.identifier && rotation.from != rotation.to)
        #expect(try store.protectionKind() == .keyFile(keyFile))
        #expect(!FileManager.default.fileExists(atPath: store.rootKeyFile))
        #expect(!store.hasPendingRootKey)
        #expect(try unwraps(key))
        #expect { _ = try KMSEngine.open(path: store.storePath, rootKey: oldKey, schedulerInterval: nil) } throws: {
            "\($0)".contains("does not match this key store")
        }
        // Nothing in the store's directory holds either key.
        let newKey = try store.loadRootKey(RootKeyUnlock())
        for name in try FileManager.default.contentsOfDirectory(atPath: store.directory) {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: store.directory + "/" + name)))
            for secret in [oldKey, newKey] {
                let raw = secret.key.withUnsafeBytes { Array($0) }
                #expect(!bytes.contains(subsequence: raw) && !bytes.contains(subsequence: secret.hexEncoded()), "\(name)")
            }
        }
    }

    /// Stopped after its first step (the new key kept, the store not rotated) and after its
    /// second (the store rotated, the record not replaced): the volume opens either way, and the
    /// same command finishes.
    @Test func anInterruptedRotationOpensAndIsFinishedByTheSameCommand() throws {
        let key = try dataKey()
        let keyFile = scratch.path + "/usb/new.key"
        let next = try RootKey.generate()
        try store.keepPending(next, as: .keyFile(keyFile), current: oldKey)
        #expect(try unwraps(key))
        let finished = try #require(try store.rotateRootKey(RootKeyUnlock(), to: .keyFile(keyFile)))
        #expect(finished.to == next.identifier)
        #expect(try unwraps(key))

        // The second step done by hand, the third not.
        let third = try RootKey.generate(), thirdFile = scratch.path + "/usb/third.key"
        try store.keepPending(third, as: .keyFile(thirdFile), current: next)
        _ = try KMSEngine.open(path: store.storePath, rootKey: next, schedulerInterval: nil).rotateRootKey(to: third)
        #expect(try store.protectionKind() == .keyFile(keyFile))
        #expect(try unwraps(key))
        #expect(throws: VolumeError.self) { _ = try store.rotateRootKey(RootKeyUnlock(), to: .keyFile(scratch.path + "/usb/other.key")) }
        #expect(try store.rotateRootKey(RootKeyUnlock(), to: .keyFile(thirdFile)) == nil)
        #expect(try store.protectionKind() == .keyFile(thirdFile) && !store.hasPendingRootKey)
        #expect(try unwraps(key))
    }

    /// A new passphrase: a store left rotated does not open with the old passphrase alone, says
    /// why, and opens once the command is run again with the new one.
    @Test func anInterruptedRotationToANewPassphraseIsFinishedWithIt() throws {
        let key = try dataKey()
        try store.keep(oldKey, as: .passphrase(Self.passphrase("old passphrase")))
        let next = try RootKey.generate()
        try store.keepPending(next, as: .passphrase(Self.passphrase("new passphrase")), current: oldKey)
        _ = try KMSEngine.open(path: store.storePath, rootKey: oldKey, schedulerInterval: nil).rotateRootKey(to: next)
        let old = RootKeyUnlock(passphrase: OneTimePassphrase(Self.passphrase("old passphrase")))
        #expect { _ = try store.openEngine(old) } throws: { "\($0)".contains("interrupted") }
        let again = RootKeyUnlock(passphrase: OneTimePassphrase(Self.passphrase("old passphrase")))
        #expect(try store.rotateRootKey(again, to: .passphrase(Self.passphrase("new passphrase"))) == nil)
        #expect(try unwraps(key, RootKeyUnlock(passphrase: OneTimePassphrase(Self.passphrase("new passphrase")))))
        #expect(throws: VolumeError.self) { _ = try store.openEngine(RootKeyUnlock(passphrase: OneTimePassphrase(Self.passphrase("old passphrase")))) }
    }

    /// Stopped at each other point a review found: after the new key's record (its key file not
    /// written yet); after the record replaced the current one (the clear old key not yet
    /// shredded); passphrase to key file after the commit (the mount needs no new passphrase).
    @Test func everyInterruptionIsFinishedByTheSameCommand() throws {
        let key = try dataKey()
        // The record written, its key file not: the same command writes it and finishes.
        let first = scratch.path + "/usb/first.key"
        try RootKeyRecord.naming(keyFile: first).authenticated(under: oldKey).write(path: store.pendingRecordFile)
        let rotated = try #require(try store.rotateRootKey(RootKeyUnlock(), to: .keyFile(first)))
        let written = try store.loadRootKey(RootKeyUnlock())
        #expect(rotated.to == written.identifier && FileManager.default.fileExists(atPath: first))
        #expect(try unwraps(key))
        // The record replaced, the clear old root.key not shredded: the same command shreds it,
        // and says the rotation to that file is done.
        let second = scratch.path + "/usb/second.key", next = try RootKey.generate()
        try store.keepPending(next, as: .keyFile(second), current: written)
        _ = try KMSEngine.open(path: store.storePath, rootKey: written, schedulerInterval: nil).rotateRootKey(to: next)
        try EmbeddedStore.writeHex(written, to: store.rootKeyFile)
        #expect(rename(store.pendingRecordFile, store.recordFile) == 0)
        #expect { _ = try store.rotateRootKey(RootKeyUnlock(), to: .keyFile(second)) } throws: { "\($0)".contains("holds the store's current root key") }
        #expect(!FileManager.default.fileExists(atPath: store.rootKeyFile))
        #expect(try unwraps(key))
        // A passphrase store moving to a key file, stopped after the commit: a mount with the
        // passphrase opens it (the pending key file needs none).
        try store.keep(next, as: .passphrase(Self.passphrase("a passphrase")))
        let third = scratch.path + "/usb/third.key", last = try RootKey.generate()
        try store.keepPending(last, as: .keyFile(third), current: next)
        _ = try KMSEngine.open(path: store.storePath, rootKey: next, schedulerInterval: nil).rotateRootKey(to: last)
        #expect(try unwraps(key, RootKeyUnlock(passphrase: OneTimePassphrase(Self.passphrase("a passphrase")))))
        #expect(try store.rotateRootKey(RootKeyUnlock(passphrase: OneTimePassphrase(Self.passphrase("a passphrase"))), to: .keyFile(third)) == nil)
        #expect(try store.protectionKind() == .keyFile(third))
        #expect(try unwraps(key))
    }

    /// A key file that exists is not taken for the new key (it may be another volume's), and
    /// nothing is written.
    @Test func anExistingKeyFileIsNotTaken() throws {
        let theirs = scratch.path + "/usb/other-volume.key"
        try EmbeddedStore.writeHex(try RootKey.generate(), to: theirs)
        #expect { _ = try store.rotateRootKey(RootKeyUnlock(), to: .keyFile(theirs)) } throws: { "\($0)".contains("exists") }
        #expect(!store.hasPendingRootKey)
        #expect(try store.loadRootKey(RootKeyUnlock()).identifier == oldKey.identifier)
    }

    /// A store swapped for one under the attacker's key, with a pending record planted beside it
    /// naming the attacker's key file: the record is not MAC'ed under this store's key, so it is
    /// not taken, and the swapped store does not open.
    @Test func aPlantedPendingRecordIsNotTaken() throws {
        let attackers = try RootKey.generate(), file = scratch.path + "/usb/attacker.key"
        try EmbeddedStore.writeHex(attackers, to: file)
        _ = try KMSEngine.open(path: store.storePath, rootKey: oldKey, schedulerInterval: nil).rotateRootKey(to: attackers)
        for planted in [RootKeyRecord.naming(keyFile: file), try RootKeyRecord.naming(keyFile: file).authenticated(under: attackers)] {
            try planted.write(path: store.pendingRecordFile)
            #expect { _ = try store.openEngine() } throws: { "\($0)".contains("does not match") }
        }
    }

    /// A run stopped after its record, before its key file; then a key file appears at that path
    /// (whoever can write there): neither the command nor a mount takes it — the record names
    /// the key it is for — and the command refuses the file.
    @Test func aKeyFileThatAppearsAfterTheRecordIsNotTaken() throws {
        let target = scratch.path + "/usb/new.key", planted = try RootKey.generate()
        var record = RootKeyRecord.naming(keyFile: target)
        record.keyIdentifier = try RootKey.generate().identifier
        try record.authenticated(under: oldKey).write(path: store.pendingRecordFile)
        try EmbeddedStore.writeHex(planted, to: target)
        _ = try KMSEngine.open(path: store.storePath, rootKey: oldKey, schedulerInterval: nil).rotateRootKey(to: planted)
        #expect { _ = try store.openEngine() } throws: { "\($0)".contains("does not match") }
        #expect { _ = try store.rotateRootKey(RootKeyUnlock(), to: .keyFile(target)) } throws: { "\($0)".contains("exists") }
    }

    /// `--to unprotected` on a protected store is refused, whatever `root.key.next` lies beside it.
    @Test func unprotectedIsRefusedForAProtectedStoreWhateverLiesBesideIt() throws {
        try store.keep(oldKey, as: .keyFile(scratch.path + "/usb/current.key"))
        try EmbeddedStore.writeHex(try RootKey.generate(), to: store.pendingClearFile)
        #expect { _ = try store.rotateRootKey(RootKeyUnlock(), to: .unprotected) } throws: { "\($0)".contains("unprotected already") }
        #expect(try store.openEngine().rootKeyIdentifier == oldKey.identifier)
    }

    /// A wrong current key writes nothing: no new key file, no pending record.
    @Test func aWrongCurrentKeyWritesNothing() throws {
        let wrong = scratch.path + "/usb/wrong.key", target = scratch.path + "/usb/target.key"
        try EmbeddedStore.writeHex(try RootKey.generate(), to: wrong)
        try store.keep(oldKey, as: .keyFile(scratch.path + "/usb/current.key"))
        #expect(throws: (any Error).self) { _ = try store.rotateRootKey(RootKeyUnlock(keyFile: wrong), to: .keyFile(target)) }
        #expect(!store.hasPendingRootKey && !FileManager.default.fileExists(atPath: target))
    }

    /// The new key is never written over the only key that opens the store.
    @Test func theCurrentKeysPlaceIsNeverTakenBeforeTheRotation() throws {
        let keyFile = scratch.path + "/usb/current.key"
        try store.keep(oldKey, as: .keyFile(keyFile))
        #expect(throws: VolumeError.self) { _ = try store.rotateRootKey(RootKeyUnlock(), to: .keyFile(keyFile)) }
        #expect(throws: VolumeError.self) { _ = try store.rotateRootKey(RootKeyUnlock(), to: .unprotected) }
        #expect(!store.hasPendingRootKey)
        #expect(try store.loadRootKey(RootKeyUnlock()).identifier == oldKey.identifier)
        _ = try store.openEngine()
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence: [UInt8]) -> Bool {
        guard !subsequence.isEmpty, count >= subsequence.count else { return false }
        return (0...(count - subsequence.count)).contains { self[$0..<($0 + subsequence.count)].elementsEqual(subsequence) }
    }
}
