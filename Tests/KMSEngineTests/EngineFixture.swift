import Foundation
import KMSFSCrypto
@testable import KMSEngine

/// A real engine on a real SQLite file in a temporary directory, with a manual clock.
final class EngineFixture {
    let directory: URL
    let rootKey: RootKey
    let clock = ManualClock()
    /// Nil only between ``close()`` and ``reopen()``.
    private(set) var engine: KMSEngine!
    let caller = Caller(account: "111122223333", region: "eu-west-1", requestID: "test")
    let otherAccount = Caller(account: "444455556666", region: "eu-west-1")

    var storePath: String { directory.appendingPathComponent("keys.sqlite").path }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("kmsd-engine-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        rootKey = try RootKey.generate()
        engine = try KMSEngine.open(path: directory.appendingPathComponent("keys.sqlite").path, rootKey: rootKey, clock: clock, schedulerInterval: nil)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    /// Closes the engine (flushing the audit) and releases the store.
    func close() throws {
        try engine?.flushAudit()
        engine = nil
    }

    /// Closes and reopens the engine on the same store.
    func reopen() throws {
        try close()
        engine = try KMSEngine.open(path: storePath, rootKey: rootKey, clock: clock, schedulerInterval: nil)
    }

    func createKey(_ description: String = "test key") throws -> KeyMetadata {
        var request = CreateKeyRequest()
        request.description = description
        return try engine.createKey(request, caller: caller).keyMetadata
    }

    /// Every byte of every file in the store's directory (the database, its WAL and journal).
    func storeBytes() throws -> [UInt8] {
        try engine.flushAudit()
        var all: [UInt8] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) {
            all += (FileManager.default.contents(atPath: directory.appendingPathComponent(name).path).map(Array.init) ?? [])
        }
        return all
    }
}

func secret(_ text: String) -> SecretBytes { SecretBytes(copying: Array(text.utf8)) }

func text(_ secret: SecretBytes) -> String { secret.withUnsafeBytes { String(decoding: $0, as: UTF8.self) } }
