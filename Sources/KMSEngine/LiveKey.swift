import KMSFSCrypto

/// A key as the engine serves it: its record and its backing keys, ready to use.
///
/// Immutable: a change makes a new `LiveKey` (sharing the unchanged material), so a cryptographic
/// call takes a snapshot under a short lock and does its work outside any lock. Each backing key
/// sits in a pool of pre-keyed AES-GCM contexts, so no SQLite read or key setup is on the hot path.
final class LiveKey: Sendable {
    let record: KeyRecord
    /// Backing keys by version.
    let material: [UInt32: AESGCMContextPool]

    init(record: KeyRecord, material: [UInt32: AESGCMContextPool]) {
        self.record = record
        self.material = material
    }

    func with(_ change: (inout KeyRecord) -> Void) -> LiveKey {
        var record = self.record
        change(&record)
        return LiveKey(record: record, material: material)
    }
}

/// The engine's working state: every key and alias, by identity.
struct EngineState {
    struct AliasID: Hashable {
        var account: String
        var region: String
        var name: String
    }

    var keys: [String: LiveKey] = [:]
    var aliases: [AliasID: AliasRecord] = [:]
    var accounts: [String: AccountRecord] = [:]
    var accessKeys: [String: LiveAccessKey] = [:]
}
