import KMSAuthorization

/// What the decision point decided and why, in words for the audit trail and, when it refuses,
/// AWS's AccessDeniedException message.
struct AccessDecision: Sendable {
    var allowed: Bool
    /// Which statement, policy or grant decided (`key policy statement "Enable IAM User Permissions"`).
    var reason: String
    /// The grant that allowed, when one did.
    var grant: GrantRecord?
    /// AWS's wording of a refusal.
    var message: String?

    static func allow(_ reason: String, grant: GrantRecord? = nil) -> AccessDecision {
        AccessDecision(allowed: true, reason: reason, grant: grant, message: nil)
    }

    static func deny(_ reason: String, _ caller: Caller, _ action: KMSAction, _ resource: String, _ why: String) -> AccessDecision {
        AccessDecision(allowed: false, reason: reason, grant: nil,
                       message: "User: \(caller.principal) is not authorized to perform: \(action.rawValue) on resource: \(resource) \(why)")
    }
}

/// The resource an action is about: a key (its policy and grants), an IAM role (its trust
/// policy), an IAM user, or the account (`*`, for account-level actions).
struct AuthorizationTarget: Sendable {
    var arn: String
    var account: String
    /// The resource-based policy, if the resource has one: it must allow (directly, or by
    /// naming the caller's account and leaving the decision to identity policies).
    var policy: Policy?
    /// What the policy is called in reasons (`key policy`, `trust policy`).
    var policyName: String
    var key: KeyRecord?
    var grants: [GrantRecord]

    static func key(_ key: LiveKey, grants: [String: GrantRecord]?) -> AuthorizationTarget {
        AuthorizationTarget(arn: key.record.arn, account: key.record.account, policy: key.policy, policyName: "key policy",
                            key: key.record, grants: grants.map { Array($0.values) } ?? [])
    }

    static func account(_ account: String) -> AuthorizationTarget {
        AuthorizationTarget(arn: "*", account: account, policy: nil, policyName: "", key: nil, grants: [])
    }

    static func iam(_ arn: String, account: String, policy: Policy? = nil, policyName: String = "") -> AuthorizationTarget {
        AuthorizationTarget(arn: arn, account: account, policy: policy, policyName: policyName, key: nil, grants: [])
    }
}

/// Combines the policies as AWS documents for KMS: an explicit deny anywhere wins; an endpoint
/// policy, when there is one, must allow; then the resource policy must allow the caller
/// directly (same account), or allow it (or its account) with the caller's identity policies
/// allowing too (always so for cross-account use); or a grant allows on its own. Pure: the
/// engine gathers the inputs.
enum AccessEvaluation {
    struct Inputs {
        var caller: Caller
        var action: KMSAction
        var target: AuthorizationTarget
        var request: AuthorizationRequest
        /// The caller's identity policies by name; nil for an account root (it may do anything
        /// its account may: only resource and endpoint policies limit it).
        var identityPolicies: [(name: String, policy: Policy)]?
        var context: EncryptionContext?
    }

    static func decide(_ inputs: Inputs) -> AccessDecision {
        let (caller, action, target, request) = (inputs.caller, inputs.action, inputs.target, inputs.request)
        let resource = target.arn
        var resourceAllow: (sid: String?, delegated: Bool)?
        if let policy = target.policy {
            switch Evaluator.evaluate(policy, request) {
            case let .denied(sid):
                return .deny("explicit deny in the \(target.policyName)\(quoted(sid))", caller, action, resource,
                             "with an explicit deny in a resource-based policy")
            case let .allowed(sid, delegated): resourceAllow = (sid, delegated)
            case .notApplicable: break
            }
        }
        var identityAllow: String?
        if let policies = inputs.identityPolicies {
            for (name, policy) in policies {
                switch Evaluator.evaluate(policy, request) {
                case let .denied(sid):
                    return .deny("explicit deny in identity policy \"\(name)\"\(quoted(sid))", caller, action, resource,
                                 "with an explicit deny in an identity-based policy")
                case let .allowed(sid, _): identityAllow = identityAllow ?? "identity policy \"\(name)\"\(quoted(sid))"
                case .notApplicable: break
                }
            }
        } else {
            identityAllow = "account root"
        }
        var endpoint = ""
        if let policy = caller.endpointPolicy {
            switch Evaluator.evaluate(policy, request) {
            case let .denied(sid):
                return .deny("explicit deny in the endpoint policy\(quoted(sid))", caller, action, resource,
                             "with an explicit deny in a VPC endpoint policy")
            case let .allowed(sid, _): endpoint = ", endpoint policy\(quoted(sid))"
            case .notApplicable:
                return .deny("no endpoint policy statement allows", caller, action, resource,
                             "because no VPC endpoint policy allows the \(action.rawValue) action")
            }
        }
        let sameAccount = target.account == caller.account
        if let allow = resourceAllow {
            let named = "\(target.policyName)\(quoted(allow.sid))"
            if !allow.delegated && sameAccount { return .allow(named + endpoint) }
            if let identityAllow { return .allow("\(named) + \(identityAllow)\(endpoint)") }
        } else if target.policy == nil, sameAccount, let identityAllow {
            return .allow(identityAllow + endpoint)
        }
        for grant in target.grants.sorted(by: { $0.grantID < $1.grantID })
        where grant.allows(action, principalARN: caller.principal, roleARN: caller.roleARN, context: inputs.context) {
            return .allow("grant \(grant.grantID)\(endpoint)", grant: grant)
        }
        if target.policy != nil && resourceAllow == nil {
            return .deny("no \(target.policyName) statement allows", caller, action, resource,
                         "because no resource-based policy allows the \(action.rawValue) action")
        }
        return .deny("no identity policy allows", caller, action, resource,
                     "because no identity-based policy allows the \(action.rawValue) action")
    }

    private static func quoted(_ sid: String?) -> String { sid.map { " statement \"\($0)\"" } ?? "" }
}
