extension KMSEngine {
    /// UpdateAlias: points an existing customer alias at another key.
    public func updateAlias(aliasName: String, targetKeyID: String, caller: Caller) throws {
        try manage(.updateAlias, caller) { record, state in
            try Validate.aliasName(aliasName)
            let id = EngineState.AliasID(account: caller.account, region: caller.region, name: aliasName)
            try authorizeAlias(.updateAlias, id, caller: caller, state: state, record: &record)
            guard var alias = state.aliases[id] else {
                throw KMSError(.notFound, "Alias \(ARN.alias(aliasName, account: caller.account, region: caller.region)) is not found.")
            }
            // kms:UpdateAlias on both keys, as AWS: whoever may not touch the old key may not take
            // its alias away from it.
            if let old = alias.targetKeyID.flatMap({ state.keys[KeyIdentity(account: alias.account, region: alias.region, keyID: $0)] }) {
                try authorize(.updateAlias, caller, key: old, in: state, record: &record)
            }
            let key = try aliasTarget(targetKeyID, action: .updateAlias, caller: caller, state: state, record: &record)
            alias.targetKeyID = key.keyID
            alias.lastUpdatedDate = clock.now()
            state.aliases[id] = alias
            return ((), [.putAlias(alias)])
        }
    }
}
