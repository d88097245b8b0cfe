import KMSAuthorization
import KMSFSCrypto

/// A key as the engine serves it: its record, its parsed key policy and its backing keys, ready to use.
///
/// Immutable: a change makes a new `LiveKey` (sharing the unchanged material), so a cryptographic
/// call takes a snapshot under a short lock and does its work outside any lock. Each backing key
/// sits in a pool of pre-keyed AES-GCM contexts, and the policy is parsed once, so no SQLite read,
/// key setup or JSON parse is on the hot path.
final class LiveKey: Sendable {
    let record: KeyRecord
    /// Backing keys by version.
    let material: [UInt32: KeyMaterial]
    /// The key policy the decision point evaluates.
    let policy: Policy

    init(record: KeyRecord, material: [UInt32: KeyMaterial], policy: Policy? = nil) {
        self.record = record
        self.material = material
        self.policy = policy ?? KeyPolicies.effective(for: record)
    }

    func with(_ change: (inout KeyRecord) -> Void) -> LiveKey {
        var record = self.record
        change(&record)
        return LiveKey(record: record, material: material, policy: record.policy == self.record.policy ? policy : nil)
    }
}

/// The engine's working state: every key, alias, grant and identity, by identity.
struct EngineState {
    struct AliasID: Hashable {
        var account: String
        var region: String
        var name: String
    }

    /// The store generation this state is (a shared store's; 0 for a store with one writer).
    var generation: Int64 = 0
    /// The sealed material rows the keys were opened from, as last loaded (a later load reuses
    /// a key whose rows are unchanged); not kept up by this instance's own changes, which only
    /// makes the next load open those keys again.
    var sealedMaterial: [KeyIdentity: [UInt32: [UInt8]]] = [:]
    var keys = KeyTable()
    var aliases: [AliasID: AliasRecord] = [:]
    var accounts: [String: AccountRecord] = [:]
    var accessKeys: [String: LiveAccessKey] = [:]
    /// Users and roles by ARN.
    var identities: [String: LiveIdentity] = [:]
    /// Grants by key, then grant ID.
    var grants: [KeyIdentity: [String: GrantRecord]] = [:]
    /// Custom key stores by ID, with their sealed secrets.
    var customKeyStores: [String: (record: CustomKeyStoreRecord, sealedSecret: [UInt8])] = [:]

    /// Takes out everything `delta` names (a load from the change feed puts back what is still there).
    mutating func without(_ delta: StoreDelta) {
        for identity in delta.keys {
            keys[identity] = nil
            sealedMaterial[identity] = nil
        }
        for alias in delta.aliases { aliases[alias] = nil }
        for account in delta.accounts { accounts[account] = nil }
        for accessKey in delta.accessKeys { accessKeys[accessKey] = nil }
        for (grantID, known) in delta.grants {
            // The key it belonged to, as the last load saw it; a grant this instance made since
            // (its own commits are not in that load) is looked for where it is.
            guard let key = known ?? grants.first(where: { $0.value[grantID] != nil })?.key else { continue }
            grants[key]?[grantID] = nil
            if grants[key]?.isEmpty == true { grants[key] = nil }
        }
        for arn in delta.identities { identities[arn] = nil }
        for store in delta.customKeyStores { customKeyStores[store] = nil }
    }
}
