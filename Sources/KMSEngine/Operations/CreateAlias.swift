extension KMSEngine {
    /// CreateAlias: a new name for a customer-managed key, unique in the account and region.
    public func createAlias(aliasName: String, targetKeyID: String, caller: Caller) throws {
        try manage(.createAlias, caller) { record, state in
            try Validate.aliasName(aliasName)
            let id = EngineState.AliasID(account: caller.account, region: caller.region, name: aliasName)
            try authorizeAlias(.createAlias, id, caller: caller, state: state, record: &record)
            let key = try aliasTarget(targetKeyID, caller: caller, state: state, record: &record)
            guard state.aliases[id] == nil else {
                throw KMSError(.alreadyExists, "An alias with the name \(ARN.alias(aliasName, account: caller.account, region: caller.region)) already exists")
            }
            let now = clock.now()
            let alias = AliasRecord(account: caller.account, region: caller.region, aliasName: aliasName,
                                    targetKeyID: key.keyID, creationDate: now, lastUpdatedDate: now)
            state.aliases[id] = alias
            return ((), [.putAlias(alias)])
        }
    }

    /// The key an alias may point at: a key of the caller's account, named by ID or ARN, not
    /// pending deletion, on which `action` is allowed (the key policy's half of an alias permission).
    func aliasTarget(_ keyID: String, action: KMSAction = .createAlias, caller: Caller, state: EngineState,
                     record: inout AuditRecord) throws -> KeyRecord {
        if (try? KeyReference(parsing: keyID))?.isAlias == true {
            throw KMSError(.validation, "Aliases must refer to keys. Not aliases")
        }
        let key = try managedKey(keyID, action: action, for: caller, in: state, record: &record).record
        guard key.account == caller.account else {
            throw KMSError(.notFound, "An alias and its key must be in the same account: \(key.arn) is not in \(caller.account)")
        }
        try Self.requireNotPendingDeletion(key)
        return key
    }

    /// The identity-policy half of an alias permission: `action` on the alias ARN (AWS decides
    /// alias permissions on the alias in IAM and on the key in its key policy).
    func authorizeAlias(_ action: KMSAction, _ id: EngineState.AliasID, caller: Caller, state: EngineState,
                        record: inout AuditRecord) throws(KMSError) {
        try authorize(action, caller, target: .iam(ARN.alias(id.name, account: id.account, region: id.region), account: id.account),
                      in: state, record: &record)
    }
}
