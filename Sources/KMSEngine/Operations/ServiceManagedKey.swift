extension KMSEngine {
    /// The AWS-managed key of `service` in the caller's account and region (`alias/aws/<service>`),
    /// created on first use as AWS creates its service keys: KeyManager AWS, rotated every year.
    /// Callers may describe it, but only the service (``Caller/viaService``) may use it, and
    /// nobody may manage it.
    public func serviceManagedKey(service: String, caller: Caller) throws -> KeyMetadata {
        let aliasName = "alias/aws/\(service)"
        try Validate.aliasName(aliasName, allowReserved: true)
        let id = EngineState.AliasID(account: caller.account, region: caller.region, name: aliasName)
        let identity = { (keyID: String) in KeyIdentity(account: caller.account, region: caller.region, keyID: keyID) }
        if let existing = state.withLock({ state in state.aliases[id]?.targetKeyID.flatMap { state.keys[identity($0)] } }) {
            return existing.record.metadata
        }
        return try manage(.createKey, caller) { record, state in
            if let existing = state.aliases[id]?.targetKeyID.flatMap({ state.keys[identity($0)] }) {
                return (existing.record.metadata, [])
            }
            var request = CreateKeyRequest()
            request.description = "Default key that protects my \(service) data when no other key is defined"
            var key = try makeKey(request, caller: caller, manager: .aws, service: service)
            key = key.with {
                $0.rotationEnabled = true
                $0.rotationPeriodInDays = 365
                $0.nextRotationDate = $0.creationDate.addingTimeInterval(365 * 86_400)
            }
            record.keyARN = key.record.arn
            let now = clock.now()
            let alias = AliasRecord(account: caller.account, region: caller.region, aliasName: aliasName,
                                    targetKeyID: key.record.keyID, creationDate: now, lastUpdatedDate: now)
            state.keys[key.record.identity] = key
            state.aliases[id] = alias
            return (key.record.metadata, try storeChanges(for: key) + [.putAlias(alias)])
        }
    }
}
