extension KMSEngine {
    /// DeleteAlias: removes a customer alias (the key is untouched).
    public func deleteAlias(aliasName: String, caller: Caller) throws {
        try manage(.deleteAlias, caller) { record, state in
            try Validate.aliasName(aliasName)
            let id = EngineState.AliasID(account: caller.account, region: caller.region, name: aliasName)
            try authorizeAlias(.deleteAlias, id, caller: caller, state: state, record: &record)
            guard let alias = state.aliases.removeValue(forKey: id) else {
                throw KMSError(.notFound, "Alias \(ARN.alias(aliasName, account: caller.account, region: caller.region)) is not found.")
            }
            if let key = alias.targetKeyID.flatMap({ state.keys[KeyIdentity(account: alias.account, region: alias.region, keyID: $0)] }) {
                record.keyARN = key.record.arn
                try authorize(.deleteAlias, caller, key: key, in: state, record: &record)
            }
            return ((), [.deleteAlias(account: caller.account, region: caller.region, aliasName: aliasName)])
        }
    }
}
