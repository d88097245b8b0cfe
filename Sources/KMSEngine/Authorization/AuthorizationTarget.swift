import KMSAuthorization

/// The resource an action is about: a key (its policy and grants), an IAM role (its trust
/// policy), an IAM user or alias, or the account (`*`, for account-level actions).
struct AuthorizationTarget: Sendable {
    var arn: String
    var account: String
    /// The resource-based policy, if the resource has one.
    var policy: Policy?
    /// What the policy is called in reasons (`key policy`, `trust policy`).
    var policyName: String
    /// The key, by reference (a `KeyRecord` copy per request cost more than the whole evaluation).
    var key: LiveKey?
    var grants: [GrantRecord]

    /// A key with the grants that still name their principal (see ``GrantRecord/granteeID``).
    static func key(_ key: LiveKey, grants: [String: GrantRecord]?, in state: EngineState? = nil) -> AuthorizationTarget {
        let current = grants.map { $0.values.filter { grant in state.map(grant.granteeIsCurrent) ?? true } } ?? []
        return AuthorizationTarget(arn: key.record.arn, account: key.record.account, policy: key.policy, policyName: "key policy",
                                   key: key, grants: current)
    }

    static func account(_ account: String) -> AuthorizationTarget {
        AuthorizationTarget(arn: "*", account: account, policy: nil, policyName: "", key: nil, grants: [])
    }

    static func iam(_ arn: String, account: String, policy: Policy? = nil, policyName: String = "") -> AuthorizationTarget {
        AuthorizationTarget(arn: arn, account: account, policy: policy, policyName: policyName, key: nil, grants: [])
    }
}
