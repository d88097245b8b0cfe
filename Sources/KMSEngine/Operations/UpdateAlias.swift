extension KMSEngine {
    /// UpdateAlias: points an existing customer alias at another key.
    public func updateAlias(aliasName: String, targetKeyID: String, caller: Caller) throws {
        try manage("UpdateAlias", caller) { record, state in
            try Validate.aliasName(aliasName)
            let id = EngineState.AliasID(account: caller.account, region: caller.region, name: aliasName)
            guard var alias = state.aliases[id] else {
                throw KMSError(.notFound, "Alias \(ARN.alias(aliasName, account: caller.account, region: caller.region)) is not found.")
            }
            let key = try aliasTarget(targetKeyID, caller: caller, state: state, record: &record)
            alias.targetKeyID = key.keyID
            alias.lastUpdatedDate = clock.now()
            state.aliases[id] = alias
            return ((), [.putAlias(alias)])
        }
    }
}
