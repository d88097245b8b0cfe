extension KMSEngine {
    /// CreateAlias: a new name for a customer-managed key, unique in the account and region.
    public func createAlias(aliasName: String, targetKeyID: String, caller: Caller) throws {
        try manage("CreateAlias", caller) { record, state in
            try Validate.aliasName(aliasName)
            let key = try aliasTarget(targetKeyID, caller: caller, state: state, record: &record)
            let id = EngineState.AliasID(account: caller.account, region: caller.region, name: aliasName)
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

    /// The key an alias may point at: a customer-managed key, named by ID or ARN, not pending deletion.
    func aliasTarget(_ keyID: String, caller: Caller, state: EngineState, record: inout AuditRecord) throws -> KeyRecord {
        let key = try managedKey(keyID, action: "CreateAlias", for: caller, in: state, record: &record).record
        try Self.requireNotPendingDeletion(key)
        return key
    }
}
