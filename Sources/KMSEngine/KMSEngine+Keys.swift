import Foundation

extension KMSEngine {
    /// Finds the key `keyID` names for `caller`: a key ID or alias name in the caller's account
    /// and region, or a key ARN or (when `allowAlias`) alias ARN in any account of the region —
    /// whether another account's key may be used is the decision point's to say, from its policy.
    ///
    /// - Parameter action: what the key is wanted for: another account's key that is missing is
    ///   refused in the same words as one whose policy refuses `action`, so the answer does not
    ///   tell which.
    func resolve(_ keyID: String, for caller: Caller, allowAlias: Bool, action: KMSAction? = nil,
                 in state: EngineState) throws(KMSError) -> LiveKey {
        let reference = try KeyReference(parsing: keyID)
        if reference.isAlias && !allowAlias {
            // AWS's words, exactly (this operation takes a key ID or key ARN, not an alias).
            throw KMSError(.notFound, "Invalid keyId \(keyID)")
        }
        let id: String, account: String
        switch reference {
        case let .keyID(value):
            guard Validate.isWellFormedKeyID(value) else { throw KMSError(.notFound, "Invalid keyId \(keyID)") }
            (id, account) = (value, caller.account)
        case let .keyARN(keyAccount, region, value):
            guard region == caller.region else { throw KMSError(.notFound, "Key '\(keyID)' does not exist") }
            (id, account) = (value, keyAccount)
        case let .aliasName(name):
            (id, account) = (try aliasTarget(name, account: caller.account, region: caller.region, in: state), caller.account)
        case let .aliasARN(aliasAccount, region, name):
            guard region == caller.region else { throw KMSError(.notFound, "Alias \(keyID) is not found.") }
            (id, account) = (try aliasTarget(name, account: aliasAccount, region: region, in: state, caller: caller, action: action), aliasAccount)
        }
        guard let key = state.keys[KeyIdentity(account: account, region: caller.region, keyID: id)] else {
            let arn = ARN.key(id, account: account, region: caller.region)
            // Another account's keys are not listed to whoever asks: a missing one is refused
            // like an existing one the caller may not use (an account this service does not
            // have: not found, as there is nothing to protect).
            guard account == caller.account || state.accounts[account] == nil else { throw Self.foreignKeyDenied(caller, arn, action) }
            throw KMSError(.notFound, "Key '\(arn)' does not exist")
        }
        return key
    }

    private func aliasTarget(_ name: String, account: String, region: String, in state: EngineState,
                             caller: Caller? = nil, action: KMSAction? = nil) throws(KMSError) -> String {
        guard let target = state.aliases[.init(account: account, region: region, name: name)]?.targetKeyID else {
            let arn = ARN.alias(name, account: account, region: region)
            if let caller, account != caller.account, state.accounts[account] != nil { throw Self.foreignKeyDenied(caller, arn, action) }
            throw KMSError(.notFound, "Alias \(arn) is not found.")
        }
        return target
    }

    /// AWS's refusal, word for word as the decision point gives it for an existing key.
    static func foreignKeyDenied(_ caller: Caller, _ arn: String, _ action: KMSAction?) -> KMSError {
        let name = action?.rawValue ?? "this operation"
        return KMSError(.accessDenied, "User: \(caller.principal) is not authorized to perform: \(name) on resource: \(arn) because no resource-based policy allows the \(name) action")
    }

    /// `kms:RequestAlias`: the alias a request named its key by, if it did.
    static func requestAlias(_ keyID: String) -> [String: [String]] {
        if keyID.hasPrefix("alias/") { return ["kms:requestalias": [keyID]] }
        if keyID.hasPrefix("arn:"), let range = keyID.range(of: ":alias/") {
            return ["kms:requestalias": [String(keyID[keyID.index(after: range.lowerBound)...])]]
        }
        return [:]
    }

    /// The key a cryptographic call may use: resolved (aliases allowed), authorized with the
    /// call's context, and in a usable state.
    func usableKey(_ keyID: String, action: KMSAction, for caller: Caller, context: EncryptionContext? = nil,
                   extra: [String: [String]] = [:], in state: EngineState, record: inout AuditRecord) throws(KMSError) -> LiveKey {
        let key = try resolve(keyID, for: caller, allowAlias: true, action: action, in: state)
        return try use(key, namedAs: keyID, action: action, for: caller, context: context, extra: extra, in: state, record: &record)
    }

    /// The second half of ``usableKey(_:action:for:context:extra:in:record:)``, for a key already
    /// found (Decrypt finds it by the blob's key ID; ReEncrypt resolves its destination first).
    func use(_ key: LiveKey, namedAs keyID: String, action: KMSAction, for caller: Caller, context: EncryptionContext? = nil,
             extra: [String: [String]] = [:], in state: EngineState, record: inout AuditRecord) throws(KMSError) -> LiveKey {
        record.keyARN = record.keyARN ?? key.record.arn
        // Most calls name their key by ID or ARN: no alias, no new dictionary.
        let alias = Self.requestAlias(keyID)
        try authorize(action, caller, key: key, context: context, extra: alias.isEmpty ? extra : extra.merging(alias) { a, _ in a },
                      in: state, record: &record)
        try requireUsable(key.record, record: &record)
        return key
    }

    /// The point where a DryRun stops: everything decided, nothing done.
    static func endDryRun(_ caller: Caller) throws(KMSError) {
        if caller.dryRun { throw KMSError(.dryRun, "The request would have succeeded, but the DryRun option is set.") }
    }

    /// Key states as AWS enforces them for use: Disabled → DisabledException; PendingDeletion,
    /// PendingImport and the rest → KMSInvalidStateException.
    func requireUsable(_ key: KeyRecord, record: inout AuditRecord) throws(KMSError) {
        if let store = key.customKeyStoreID, key.state != .pendingDeletion, keyStoreConnections.connection(store) == nil {
            throw KMSError(.invalidState, "\(key.arn) is Unavailable: its custom key store \(store) is not connected.")
        }
        switch key.state {
        case .enabled, .updating:
            // Updating (a change of primary Region reaching a peer) leaves the key usable, as AWS does.
            // Expired imported material is unusable at once, not at the scheduler's next tick
            // (which deletes it and makes the key PendingImport).
            if Self.materialExpired(key, now: clock.now()) {
                throw KMSError(.invalidState, "\(key.arn) is unusable: its imported key material expired at \(key.currentVersion?.validTo.map { "\($0)" } ?? "its ValidTo").")
            }
            return
        case .disabled:
            throw KMSError(.disabled, "\(key.arn) is disabled.")
        case .pendingDeletion:
            record.note = "use of a key pending deletion"
            pendingDeletionAlarm.raise(keyARN: key.arn, record: record)
            throw KMSError(.invalidState, "\(key.arn) is pending deletion.")
        default:
            throw KMSError(.invalidState, "\(key.arn) is \(key.state.rawValue).")
        }
    }

    /// For management and read calls: the key, resolved (aliases only when `allowAlias`),
    /// authorized for `action`.
    func managedKey(_ keyID: String, action: KMSAction, allowAlias: Bool = false, extra: [String: [String]] = [:],
                    for caller: Caller, in state: EngineState, record: inout AuditRecord) throws(KMSError) -> LiveKey {
        let key = try resolve(keyID, for: caller, allowAlias: allowAlias, action: action, in: state)
        record.keyARN = record.keyARN ?? key.record.arn
        try authorize(action, caller, key: key, extra: extra, in: state, record: &record)
        return key
    }

    /// Authorizes an action on the caller's account rather than a key (CreateKey, ListKeys, ...).
    func authorizeAccount(_ action: KMSAction, _ caller: Caller, extra: [String: [String]] = [:], in state: EngineState,
                          record: inout AuditRecord) throws(KMSError) {
        try authorize(action, caller, target: .account(caller.account), extra: extra, in: state, record: &record)
    }
}

extension KMSEngine {
    /// A key's metadata as DescribeKey shows it: a key whose custom key store is not connected is
    /// Unavailable (unless pending deletion), and names its store's cluster.
    func metadata(of key: LiveKey, in state: EngineState) -> KeyMetadata {
        var metadata = key.record.metadata
        metadata.multiRegionConfiguration = multiRegionConfiguration(of: key.record, in: state)
        if let id = key.record.customKeyStoreID {
            metadata.cloudHsmClusterId = state.customKeyStores[id]?.record.cloudHsmClusterID
            if keyStoreConnections.connection(id) == nil, key.record.state != .pendingDeletion {
                metadata.keyState = .unavailable
                metadata.enabled = false
            }
        }
        return metadata
    }
}
