import Foundation
import KMSFSCrypto
import KMSFSTestSupport
import KMSStore
@testable import KMSEngine

/// The two store backends, for suites that run on both (``StoreConformanceTests``).
enum Backend: String, CaseIterable, CustomStringConvertible {
    case sqlite, postgres
    var description: String { rawValue }
}

/// A real engine on a real SQLite file in a temporary directory (or a database of its own on
/// the tests' PostgreSQL server), with a manual clock.
final class EngineFixture {
    let directory: URL
    let backend: Backend
    /// The PostgreSQL database's URI (nil for SQLite).
    private let postgresURL: String?
    let rootKey: RootKey
    let clock = ManualClock()
    /// Nil only between ``close()`` and ``reopen()``.
    private(set) var engine: KMSEngine!
    let caller = Caller(account: "111122223333", region: "eu-west-1", requestID: "test")
    let otherAccount = Caller(account: "444455556666", region: "eu-west-1")

    /// The store as `KMSEngine.open(path:)` takes it: a file, or a `postgresql://` URI.
    var storePath: String { postgresURL ?? directory.appendingPathComponent("keys.sqlite").path }

    init(backend: Backend = .sqlite) throws {
        self.backend = backend
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("kmsd-engine-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        postgresURL = backend == .postgres ? try PostgresServer.shared.get().newDatabase() : nil
        rootKey = try RootKey.generate()
        engine = try KMSEngine.open(path: postgresURL ?? directory.appendingPathComponent("keys.sqlite").path, rootKey: rootKey, clock: clock,
                                    schedulerInterval: nil)
    }

    deinit {
        engine = nil
        if let postgresURL, case let .success(server) = PostgresServer.shared { server.dropDatabase(postgresURL) }
        try? FileManager.default.removeItem(at: directory)
    }

    /// A connection of its own to the store's database, as someone with write access to it has.
    func rawConnection() throws -> any SQLConnection {
        if let postgresURL { return try PostgresDatabase(url: postgresURL) }
        return try SQLiteDatabase(path: storePath)
    }

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
