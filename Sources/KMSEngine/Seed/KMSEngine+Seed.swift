import Foundation
import KMSFSCrypto

extension KMSEngine {
    /// Applies `seed` as one change (one transaction, one audit record "Seed"): what is missing
    /// is created, what exists is compared with the seed and left as it is.
    ///
    /// - Throws: ``SeedError`` naming the first entry that conflicts with the store or is invalid
    ///   (then nothing is applied); other errors if the store fails.
    @discardableResult
    public func seed(_ seed: Seed) throws -> SeedOutcome {
        var refusal: SeedError?
        do {
            defer { reconnectCustomKeyStores() }
            return try manage("Seed", Self.adminCaller) { record, state in
                do {
                    var plan = SeedPlan()
                    for account in seed.accounts { try plan.apply(account, engine: self, to: &state) }
                    record.note = "seed: \(plan.outcome.created.count) created, \(plan.outcome.unchanged.count) unchanged"
                    return (plan.outcome, plan.changes)
                } catch let error as SeedError {
                    refusal = error
                    throw KMSError(.validation, error.description)
                }
            }
        } catch {
            throw refusal ?? error
        }
    }
}

/// One seed's way through a draft state: what it created, what it found, the store changes.
private struct SeedPlan {
    var outcome = SeedOutcome()
    var changes: [StoreChange] = []

    mutating func apply(_ account: Seed.Account, engine: KMSEngine, to state: inout EngineState) throws {
        let entry = "account \(account.id)"
        if let existing = state.accounts[account.id] {
            if let name = account.name, existing.name != name {
                throw SeedError.conflict(entry: entry, reason: "it exists named \"\(existing.name)\"; the seed says \"\(name)\"")
            }
            outcome.unchanged.append(entry)
        } else {
            let created = try invalid(entry) { try engine.addAccount(account.id, name: account.name ?? "account \(account.id)", to: &state) }
            changes.append(.putAccount(created))
            outcome.created.append(entry)
        }
        for identity in account.identities { try apply(identity, account: account.id, engine: engine, to: &state) }
        for store in account.customKeyStores { try apply(store, account: account.id, engine: engine, to: &state) }
        for accessKey in account.accessKeys { try apply(accessKey, account: account.id, engine: engine, to: &state) }
        for key in account.keys { try apply(key, account: account.id, engine: engine, to: &state) }
    }

    mutating func apply(_ identity: Seed.Identity, account: String, engine: KMSEngine, to state: inout EngineState) throws {
        let entry = "\(identity.kind.rawValue) \(identity.name)"
        let arn = IdentityRecord.arn(identity.kind, account: account, name: identity.name)
        if let existing = state.identities[arn] {
            guard existing.record.policies == identity.policies, existing.record.trustPolicy == identity.trustPolicy else {
                throw SeedError.conflict(entry: entry, reason: "it exists with different policies")
            }
            outcome.unchanged.append(entry)
            return
        }
        try invalid(entry) {
            try Validate.iamName(identity.name, "\(identity.kind.rawValue) name", 64)
            for (name, document) in identity.policies {
                try Validate.iamName(name, "policy name", 128)
                try KMSEngine.parseIAMPolicy(document, kind: .identity)
            }
            if identity.kind == .role {
                guard let trust = identity.trustPolicy else { throw KMSError(.validation, "a role needs a trustPolicy") }
                try KMSEngine.checkTrustPolicy(trust)
            } else if identity.trustPolicy != nil {
                throw KMSError(.validation, "a user has no trustPolicy")
            }
        }
        let record = IdentityRecord(kind: identity.kind, account: account, name: identity.name,
                                    id: (identity.kind == .user ? "AIDA" : "AROA") + (try KMSEngine.randomIAMID()),
                                    creationDate: engine.clock.now(), description: nil, tags: [], policies: identity.policies,
                                    trustPolicy: identity.trustPolicy, maxSessionDuration: identity.kind == .role ? 3600 : nil)
        state.identities[arn] = LiveIdentity(record: record)
        changes.append(.putIdentity(record))
        outcome.created.append(entry)
    }

    /// A custom key store, found by name in its account and Region; an existing one must have the
    /// seed's type, cluster and proxy settings (its secret is not compared: it may have been
    /// updated since), and is marked to connect if the seed says so.
    mutating func apply(_ store: Seed.CustomKeyStore, account: String, engine: KMSEngine, to state: inout EngineState) throws {
        let name = store.settings.name ?? "?"
        let entry = "custom key store \(name)"
        if let (existing, sealed) = state.customKeyStores.values.first(where: { $0.record.account == account && $0.record.region == store.region && $0.record.name == name }) {
            let s = store.settings
            var differences: [String] = []
            if existing.type != (s.type ?? .awsCloudHSM) { differences.append("type") }
            if existing.cloudHsmClusterID != s.cloudHsmClusterID { differences.append("cloudHsmClusterId") }
            if existing.xksProxyURIEndpoint != s.xksProxyURIEndpoint || existing.xksProxyURIPath != s.xksProxyURIPath { differences.append("proxy URI") }
            if existing.xksAccessKeyID != s.xksAccessKeyID { differences.append("proxy access key") }
            guard differences.isEmpty else { throw SeedError.conflict(entry: entry, reason: "it exists with a different \(differences.joined(separator: ", "))") }
            if store.connect && !existing.connected {
                var marked = existing
                marked.connected = true
                state.customKeyStores[existing.id] = (marked, sealed)
                changes.append(.putCustomKeyStore(marked, sealedSecret: sealed))
            }
            outcome.unchanged.append(entry)
            return
        }
        let (created, sealed) = try invalid(entry) {
            try engine.newCustomKeyStore(store.settings, account: account, region: store.region, connected: store.connect, in: state)
        }
        state.customKeyStores[created.id] = (created, sealed)
        changes.append(.putCustomKeyStore(created, sealedSecret: sealed))
        outcome.created.append("\(entry) (\(created.id))")
    }

    mutating func apply(_ accessKey: Seed.AccessKey, account: String, engine: KMSEngine, to state: inout EngineState) throws {
        let entry = "access key \(accessKey.id)"
        guard let existing = state.accessKeys[accessKey.id] else {
            let (_, change) = try invalid(entry) {
                try engine.addAccessKey(account: account, userName: accessKey.user, accessKeyID: accessKey.id, secret: accessKey.secret, to: &state)
            }
            changes += change
            outcome.created.append(entry)
            return
        }
        let principal = KMSEngine.principal(account: account, userName: accessKey.user)
        guard existing.record.principal == principal else {
            throw SeedError.conflict(entry: entry, reason: "it exists for \(existing.record.principal); the seed says \(principal)")
        }
        guard existing.secret == SecretBytes(copying: Array(accessKey.secret.utf8)) else {
            throw SeedError.conflict(entry: entry, reason: "it exists with a different secret")
        }
        outcome.unchanged.append(entry)
    }

    mutating func apply(_ key: Seed.Key, account: String, engine: KMSEngine, to state: inout EngineState) throws {
        let entry = key.name
        if let id = key.id { try invalid(entry) { try Validate.keyID(id) } }
        if let material = key.material, key.spec.isSymmetric, material.count != 32 {
            throw SeedError.invalid(entry: entry, reason: "material is 32 bytes (AES-256), not \(material.count)")
        }
        if let material = key.material, let digest = key.spec.hmacDigest, material.count != digest.byteCount {
            throw SeedError.invalid(entry: entry, reason: "material of \(key.spec.rawValue) is \(digest.byteCount) bytes, not \(material.count)")
        }
        if key.material != nil && key.rotationPeriodInDays != nil {
            throw SeedError.invalid(entry: entry, reason: "a key with given material cannot rotate automatically (like imported material)")
        }
        if let days = key.rotationPeriodInDays { try invalid(entry) { try Validate.range(days, "rotationPeriodInDays", KeyRecord.rotationPeriods) } }
        let found: LiveKey?
        if let id = key.id {
            // A key is its identity: the same ID in another account or Region is another key.
            found = state.keys[KeyIdentity(account: account, region: key.region, keyID: id)]
        } else if let alias = key.aliases.first {
            found = state.aliases[EngineState.AliasID(account: account, region: key.region, name: alias)]?.targetKeyID
                .flatMap { state.keys[KeyIdentity(account: account, region: key.region, keyID: $0)] }
        } else {
            throw SeedError.invalid(entry: entry, reason: "a key needs an id or an alias, to be found again at the next start")
        }
        let keyID: String
        if let live = found {
            let found = live.record.keyID
            try compare(live, with: key, account: account, entry: entry)
            outcome.unchanged.append(entry)
            keyID = found
        } else {
            var request = CreateKeyRequest()
            request.description = key.description
            request.tags = key.tags
            request.origin = key.material == nil ? .awsKMS : .external
            request.policy = key.policy
            request.keySpec = key.spec
            request.keyUsage = key.usage ?? key.spec.usages[0]
            let caller = Caller(account: account, region: key.region, principal: KMSEngine.principal(account: account, userName: nil),
                                requestID: "seed")
            var live = try invalid(entry) {
                try engine.makeKey(request, caller: caller, manager: .customer, service: nil, keyID: key.id, material: key.material)
            }
            // The principals a seeded policy names must exist; the lockout check is the seed's
            // author's business (an administrator writing the store's starting point).
            if key.policy != nil { try invalid(entry) { [live] in try engine.checkKeyPolicy(live, caller: caller, bypassLockoutCheck: true, in: state) } }
            if let days = key.rotationPeriodInDays {
                let now = engine.clock.now()
                live = live.with {
                    $0.rotationEnabled = true
                    $0.rotationPeriodInDays = days
                    $0.nextRotationDate = now.addingTimeInterval(Double(days) * 86_400)
                }
            }
            keyID = live.record.keyID
            state.keys[live.record.identity] = live
            changes += try engine.storeChanges(for: live)
            outcome.created.append(entry)
        }
        for alias in key.aliases { try apply(alias: alias, keyID: keyID, account: account, region: key.region, engine: engine, to: &state) }
    }

    /// An existing key against its seed entry: every declared attribute must match.
    func compare(_ live: LiveKey, with key: Seed.Key, account: String, entry: String) throws {
        let record = live.record
        guard record.account == account, record.region == key.region else {
            throw SeedError.conflict(entry: entry, reason: "it exists as \(record.arn)")
        }
        guard record.manager == .customer, record.spec == key.spec, record.usage == key.usage ?? key.spec.usages[0] else {
            throw SeedError.conflict(entry: entry, reason: "it exists, but is not a customer-managed \(key.spec.rawValue) key of that usage")
        }
        guard record.state != .pendingDeletion else {
            throw SeedError.conflict(entry: entry, reason: "it exists, but is pending deletion")
        }
        var differences: [String] = []
        if record.description != key.description { differences.append("description") }
        if Set(record.tags) != Set(key.tags) { differences.append("tags") }
        if (record.rotationEnabled ? record.rotationPeriodInDays : nil) != key.rotationPeriodInDays { differences.append("rotation") }
        if record.policy != (key.policy ?? KeyPolicies.defaultPolicy(account: account)) { differences.append("policy") }
        if let material = key.material {
            if record.origin != .external || (try? live.material[1]?.storedBytes()) != material { differences.append("material") }
        } else if record.origin != .awsKMS {
            differences.append("material (it has given material; the seed gives none)")
        }
        guard differences.isEmpty else {
            throw SeedError.conflict(entry: entry, reason: "it exists with a different \(differences.joined(separator: ", "))")
        }
    }

    mutating func apply(alias: String, keyID: String, account: String, region: String, engine: KMSEngine, to state: inout EngineState) throws {
        let entry = "alias \(alias)"
        try invalid(entry) { try Validate.aliasName(alias) }
        let id = EngineState.AliasID(account: account, region: region, name: alias)
        if let existing = state.aliases[id] {
            guard existing.targetKeyID == keyID else {
                throw SeedError.conflict(entry: entry, reason: "it points at key \(existing.targetKeyID ?? "none"); the seed says \(keyID)")
            }
            outcome.unchanged.append(entry)
            return
        }
        let now = engine.clock.now()
        let record = AliasRecord(account: account, region: region, aliasName: alias, targetKeyID: keyID, creationDate: now, lastUpdatedDate: now)
        state.aliases[id] = record
        changes.append(.putAlias(record))
        outcome.created.append(entry)
    }

    /// Runs a validating step; its KMS error becomes an invalid-entry error naming `entry`.
    func invalid<R>(_ entry: String, _ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch let error as KMSError {
            throw SeedError.invalid(entry: entry, reason: error.message)
        }
    }
}
