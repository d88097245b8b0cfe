extension KMSEngine {
    /// DeleteAlias: removes a customer alias (the key is untouched).
    public func deleteAlias(aliasName: String, caller: Caller) throws {
        try manage("DeleteAlias", caller) { record, state in
            try Validate.aliasName(aliasName)
            let id = EngineState.AliasID(account: caller.account, region: caller.region, name: aliasName)
            guard let alias = state.aliases.removeValue(forKey: id) else {
                throw KMSError(.notFound, "Alias \(ARN.alias(aliasName, account: caller.account, region: caller.region)) is not found.")
            }
            record.keyARN = alias.targetKeyID.map { ARN.key($0, account: caller.account, region: caller.region) }
            return ((), [.deleteAlias(account: caller.account, region: caller.region, aliasName: aliasName)])
        }
    }
}
