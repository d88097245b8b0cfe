/// What the decision point decided and why, in words for the audit trail and, when it refuses,
/// AWS's AccessDeniedException message.
public struct AccessDecision: Sendable, Equatable {
    public var allowed: Bool
    /// Which statement, policy or grant decided (`key policy statement "Enable IAM User Permissions"`).
    public var reason: String
    /// The grant that allowed, when one did.
    public var grantID: String?
    /// AWS's wording of a refusal.
    public var message: String?

    public init(allowed: Bool, reason: String, grantID: String? = nil, message: String? = nil) {
        self.allowed = allowed
        self.reason = reason
        self.grantID = grantID
        self.message = message
    }

    static func allow(_ reason: String, grantID: String? = nil) -> AccessDecision {
        AccessDecision(allowed: true, reason: reason, grantID: grantID, message: nil)
    }

    static func deny(_ reason: String, _ request: AuthorizationRequest, _ why: String) -> AccessDecision {
        AccessDecision(allowed: false, reason: reason, grantID: nil,
                       message: "User: \(request.principal.arn) is not authorized to perform: \(request.action) on resource: \(request.resource) \(why)")
    }
}

/// Combines the policies as AWS documents for KMS: an explicit deny anywhere wins; an endpoint
/// policy, when there is one, must allow; then the resource policy must allow the caller
/// directly (same account), or allow it (or its account) with the caller's identity policies
/// allowing too (always so for cross-account use); or a grant allows on its own. Without a
/// resource policy (account-level actions, IAM resources), the identity policies decide, in the
/// caller's own account only. Pure: the caller gathers the inputs.
public enum AccessEvaluation {
    public struct Inputs: Sendable {
        public var request: AuthorizationRequest
        /// The account the resource belongs to.
        public var resourceAccount: String
        /// The resource-based policy (key policy, trust policy), if the resource has one.
        public var resourcePolicy: Policy?
        /// What the resource policy is called in reasons (`key policy`, `trust policy`).
        public var resourcePolicyName: String
        /// The caller's identity policies by name; nil for an account root (it may do anything
        /// its account may: only resource and endpoint policies limit it).
        public var identityPolicies: [(name: String, policy: Policy)]?
        public var endpointPolicy: Policy?
        public var grants: [Grant]
        /// The operation's encryption context, nil when it takes none (see ``Grant/allows(_:context:)``).
        public var context: [String: String]?

        public init(request: AuthorizationRequest, resourceAccount: String, resourcePolicy: Policy? = nil, resourcePolicyName: String = "key policy",
                    identityPolicies: [(name: String, policy: Policy)]?, endpointPolicy: Policy? = nil, grants: [Grant] = [],
                    context: [String: String]? = nil) {
            self.request = request
            self.resourceAccount = resourceAccount
            self.resourcePolicy = resourcePolicy
            self.resourcePolicyName = resourcePolicyName
            self.identityPolicies = identityPolicies
            self.endpointPolicy = endpointPolicy
            self.grants = grants
            self.context = context
        }
    }

    public static func decide(_ inputs: Inputs) -> AccessDecision {
        let request = inputs.request, action = request.action, policyName = inputs.resourcePolicyName
        var resourceAllow: (sid: String?, delegated: Bool)?
        if let policy = inputs.resourcePolicy {
            switch Evaluator.evaluate(policy, request) {
            case let .denied(sid):
                return .deny("explicit deny in the \(policyName)\(quoted(sid))", request, "with an explicit deny in a resource-based policy")
            case let .allowed(sid, delegated): resourceAllow = (sid, delegated)
            case .notApplicable: break
            }
        }
        var identityAllow: String?
        if let policies = inputs.identityPolicies {
            for (name, policy) in policies {
                switch Evaluator.evaluate(policy, request) {
                case let .denied(sid):
                    return .deny("explicit deny in identity policy \"\(name)\"\(quoted(sid))", request,
                                 "with an explicit deny in an identity-based policy")
                case let .allowed(sid, _): identityAllow = identityAllow ?? "identity policy \"\(name)\"\(quoted(sid))"
                case .notApplicable: break
                }
            }
        } else {
            identityAllow = "account root"
        }
        var endpoint = ""
        if let policy = inputs.endpointPolicy {
            switch Evaluator.evaluate(policy, request) {
            case let .denied(sid):
                return .deny("explicit deny in the endpoint policy\(quoted(sid))", request, "with an explicit deny in a VPC endpoint policy")
            case let .allowed(sid, _): endpoint = ", endpoint policy\(quoted(sid))"
            case .notApplicable:
                return .deny("no endpoint policy statement allows", request, "because no VPC endpoint policy allows the \(action) action")
            }
        }
        let sameAccount = inputs.resourceAccount == request.principal.account
        if let allow = resourceAllow {
            let named = "\(policyName)\(quoted(allow.sid))"
            if !allow.delegated && sameAccount { return .allow(named + endpoint) }
            if let identityAllow { return .allow("\(named) + \(identityAllow)\(endpoint)") }
        } else if inputs.resourcePolicy == nil, sameAccount, let identityAllow {
            return .allow(identityAllow + endpoint)
        }
        for grant in inputs.grants.sorted(by: { $0.id < $1.id }) where grant.allows(request, context: inputs.context) {
            return .allow("grant \(grant.id)\(endpoint)", grantID: grant.id)
        }
        if inputs.resourcePolicy != nil && resourceAllow == nil {
            return .deny("no \(policyName) statement allows", request, "because no resource-based policy allows the \(action) action")
        }
        return .deny("no identity policy allows", request, "because no identity-based policy allows the \(action) action")
    }

    private static func quoted(_ sid: String?) -> String { sid.map { " statement \"\($0)\"" } ?? "" }
}
