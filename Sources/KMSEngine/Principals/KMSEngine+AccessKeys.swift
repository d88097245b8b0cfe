/// Access keys through IAM's API: a user's (or, without a user name, the caller's own) keys,
/// at most two per user as IAM allows, activated, deactivated and deleted.
extension KMSEngine {
    static let accessKeysPerUser = 2

    /// The user an IAM access-key call is about: the named one, or the caller itself.
    private func accessKeyOwner(_ userName: String?, _ caller: Caller) throws(KMSError) -> String {
        if let userName {
            try Validate.iamName(userName, "user name", 64)
            return IdentityRecord.arn(.user, account: caller.account, name: userName)
        }
        guard caller.roleARN == nil else {
            throw KMSError(.iamValidation, "Must specify userName when calling with non-User credentials")
        }
        return caller.principal
    }

    /// CreateAccessKey: a new key for a user; the secret is returned this once.
    public func createAccessKey(userName: String?, caller: Caller) throws -> NewAccessKey {
        let owner = try accessKeyOwner(userName, caller)
        return try iamChange(.iamCreateAccessKey, owner, caller) { record, state in
            if let userName { _ = try Self.identity(.user, userName, caller.account, in: state) }
            guard state.accessKeys.values.filter({ $0.record.principal == owner }).count < Self.accessKeysPerUser else {
                throw KMSError(.iamLimitExceeded, "Cannot exceed quota for AccessKeysPerUser: \(Self.accessKeysPerUser)")
            }
            let (key, changes) = try addAccessKey(account: caller.account, userName: userName ?? PrincipalARN.userName(owner),
                                                  accessKeyID: Self.randomAccessKeyID(), secret: Self.randomSecret(), to: &state)
            record.note = "access key \(key.record.accessKeyID) for \(owner)"
            return (key, changes)
        }
    }

    /// UpdateAccessKey: `Active` or `Inactive` (an inactive key signs nothing until made active again).
    public func updateAccessKey(_ accessKeyID: String, status: String, userName: String?, caller: Caller) throws {
        let owner = try accessKeyOwner(userName, caller)
        try iamChange(.iamUpdateAccessKey, owner, caller) { record, state in
            guard status == "Active" || status == "Inactive" else {
                throw KMSError(.iamValidation, "Status must be Active or Inactive")
            }
            let live = try Self.ownedAccessKey(accessKeyID, owner: owner, in: state)
            var updated = live.record
            updated.status = status
            let sealed = try rootKey.seal(live.secret, label: updated.secretLabel, version: 0)
            state.accessKeys[accessKeyID] = LiveAccessKey(record: updated, secret: live.secret)
            record.note = "access key \(accessKeyID) \(status)"
            return ((), [.putAccessKey(updated, sealedSecret: sealed)])
        }
    }

    /// DeleteAccessKey.
    public func deleteAccessKey(_ accessKeyID: String, userName: String?, caller: Caller) throws {
        let owner = try accessKeyOwner(userName, caller)
        try iamChange(.iamDeleteAccessKey, owner, caller) { record, state in
            _ = try Self.ownedAccessKey(accessKeyID, owner: owner, in: state)
            state.accessKeys[accessKeyID] = nil
            record.note = "access key \(accessKeyID)"
            return ((), [.deleteAccessKey(accessKeyID)])
        }
    }

    /// ListAccessKeys: a user's keys (IDs, status, dates; never secrets).
    public func listAccessKeys(userName: String?, caller: Caller) throws -> [AccessKeyRecord] {
        let owner = try accessKeyOwner(userName, caller)
        return try iamRead(.iamListAccessKeys, owner, caller) { state in
            if let userName { _ = try Self.identity(.user, userName, caller.account, in: state) }
            return state.accessKeys.values.map(\.record).filter { $0.principal == owner }.sorted { $0.accessKeyID < $1.accessKeyID }
        }
    }

    private static func ownedAccessKey(_ id: String, owner: String, in state: EngineState) throws(KMSError) -> LiveAccessKey {
        guard let key = state.accessKeys[id], key.record.principal == owner else {
            throw KMSError(.noSuchEntity, "The Access Key with id \(id.prefix(128)) cannot be found.")
        }
        return key
    }
}
