import KMSClient
import KMSEngine
import KMSFSCrypto
import Logging
import Synchronization
import Testing

/// Captures log records in memory.
final class CapturedLog: Sendable {
    let records = Mutex<[(Logger.Level, String, Logger.Metadata)]>([])

    struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            log.records.withLock { $0.append((event.level, "\(event.message)", event.metadata ?? [:])) }
        }
    }

    var logger: Logger { Logger(label: "test") { _ in Handler(log: self) } }
}

@Suite struct LoggedClientTests {
    @Test func unusableKeysAreLoggedWithTheirState() throws {
        let f = try EmbeddedFixture()
        let key = try f.key()
        let captured = CapturedLog()
        let client = LoggedKMSClient(f.client, logger: captured.logger)
        let dataKey = try client.generateDataKey(keyID: key, context: ["f": "1"])
        #expect(captured.records.withLock { $0.isEmpty })
        try f.engine.disableKey(keyID: key, caller: f.caller)
        #expect(throws: KMSClientError.self) { try client.decrypt(ciphertextBlob: dataKey.ciphertextBlob, context: ["f": "1"], keyID: key) }
        try f.engine.enableKey(keyID: key, caller: f.caller)
        _ = try f.engine.scheduleKeyDeletion(keyID: key, caller: f.caller)
        #expect(throws: KMSClientError.self) { try client.generateDataKey(keyID: key, context: [:]) }
        let records = captured.records.withLock { $0 }
        #expect(records.count == 2)
        #expect(records[0].0 == .warning && records[0].1.contains("is Disabled") && records[0].2["kms.key_state"] == "Disabled")
        #expect(records[1].1.contains("is PendingDeletion") && records[1].2["kms.key_id"] == "\(key)")
        // Nothing secret in the log.
        let plaintext = dataKey.plaintext.withUnsafeBytes { hex($0) }
        #expect(!records.contains { "\($0.1) \($0.2)".contains(plaintext) })
    }
}
