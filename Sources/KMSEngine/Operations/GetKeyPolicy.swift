public struct ListKeyPoliciesResponse: Sendable {
    public var policyNames: [String]
    public var nextMarker: String?
    public var truncated: Bool
}

extension KMSEngine {
    /// GetKeyPolicy: the key policy as it was given (only `default` exists).
    public func getKeyPolicy(keyID: String, policyName: String = "default", caller: Caller) throws -> String {
        try perform(.getKeyPolicy, caller) { record, state in
            let key = try managedKey(keyID, action: .getKeyPolicy, for: caller, in: state, record: &record)
            guard policyName == "default" else { throw KMSError(.notFound, "No such policy: \(policyName)") }
            return key.record.manager == .aws && key.record.service != nil
                ? KeyPolicies.awsManagedPolicy(account: key.record.account, service: key.record.service!) : key.record.policy
        }
    }

    /// ListKeyPolicies: the names of the key's policies — always `default`, as in AWS.
    public func listKeyPolicies(keyID: String, limit: Int? = nil, marker: String? = nil, caller: Caller) throws -> ListKeyPoliciesResponse {
        try perform(.listKeyPolicies, caller) { record, state in
            _ = try managedKey(keyID, action: .listKeyPolicies, for: caller, in: state, record: &record)
            let (page, next) = try Paging.page(["default"], key: { $0 }, limit: limit, marker: marker)
            return ListKeyPoliciesResponse(policyNames: page, nextMarker: next, truncated: next != nil)
        }
    }

    /// PutKeyPolicy: replaces the key policy (name `default`), after the checks of
    /// ``checkKeyPolicy(_:caller:bypassLockoutCheck:in:)``. Not for AWS-managed keys.
    public func putKeyPolicy(keyID: String, policyName: String = "default", policy: String, bypassPolicyLockoutSafetyCheck: Bool = false,
                             caller: Caller) throws {
        try manage(.putKeyPolicy, caller) { record, state in
            let key = try managedKey(keyID, action: .putKeyPolicy,
                                     extra: ["kms:bypasspolicylockoutsafetycheck": [String(bypassPolicyLockoutSafetyCheck)]],
                                     for: caller, in: state, record: &record)
            guard policyName == "default" else {
                throw KMSError.constraint(policyName, member: "policyName", "Member must satisfy regular expression pattern: default")
            }
            guard key.record.manager == .customer else {
                throw KMSError(.unsupportedOperation, "\(key.record.arn) is an AWS managed key: its policy cannot be changed")
            }
            let parsed = try KeyPolicies.parsed(policy)
            var updated = key.record
            updated.policy = policy
            let live = LiveKey(record: updated, material: key.material, policy: parsed)
            try checkKeyPolicy(live, caller: caller, bypassLockoutCheck: bypassPolicyLockoutSafetyCheck, in: state)
            state.keys[updated.identity] = live
            return ((), [.putKey(updated)])
        }
    }
}
