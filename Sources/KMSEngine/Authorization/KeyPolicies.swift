import KMSAuthorization

/// The key policies the service writes itself: the default one, and the one of AWS-managed keys.
enum KeyPolicies {
    /// AWS's default key policy: the account may do everything, as its identity policies say
    /// (the account root is the principal, so this delegates to IAM).
    static func defaultPolicy(account: String) -> String {
        """
        {"Version":"2012-10-17","Id":"key-default-1","Statement":[{"Sid":"Enable IAM User Permissions",\
        "Effect":"Allow","Principal":{"AWS":"arn:aws:iam::\(account):root"},"Action":"kms:*","Resource":"*"}]}
        """
    }

    /// The policy AWS gives an AWS-managed key: the account's principals may use it only through
    /// its service (`kms:ViaService`), and may read it; nobody may manage it.
    static func awsManagedPolicy(account: String, service: String) -> String {
        """
        {"Version":"2012-10-17","Id":"auto-\(service)","Statement":[{"Sid":"Allow access through \(service) for all principals in the account that are authorized to use \(service)",\
        "Effect":"Allow","Principal":{"AWS":"*"},"Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:CreateGrant","kms:DescribeKey"],\
        "Resource":"*","Condition":{"StringEquals":{"kms:CallerAccount":"\(account)","kms:ViaService":"\(service)"}}},\
        {"Sid":"Allow direct access to key metadata to the account","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::\(account):root"},\
        "Action":["kms:Describe*","kms:Get*","kms:List*"],"Resource":"*"}]}
        """
    }

    /// The policy in force for `record`: an AWS-managed key's is AWS's, whatever is stored. A stored policy that does not parse (stores written
    /// before policies were enforced accepted any JSON with a Statement) falls back to the
    /// default policy, which is what was in force for it then.
    static func effective(for record: KeyRecord) -> Policy {
        if record.manager == .aws, let service = record.service,
           let parsed = try? Policy(json: Array(awsManagedPolicy(account: record.account, service: service).utf8)) {
            return parsed
        }
        if let parsed = try? Policy(json: Array(record.policy.utf8)) { return parsed }
        // The default policy is a constant of this file: it always parses.
        return try! Policy(json: Array(defaultPolicy(account: record.account).utf8))
    }
}

extension KeyPolicies {
    /// Parses a key policy given to CreateKey or PutKeyPolicy, refusing it as AWS does:
    /// LimitExceededException above 32 KiB, MalformedPolicyDocumentException with the reason.
    static func parsed(_ text: String) throws(KMSError) -> Policy {
        try Validate.length(text, "policy", 1...131_072)
        guard text.utf8.count <= Policy.maximumByteCount else {
            throw KMSError(.limitExceeded, "The key policy is \(text.utf8.count) bytes; the limit is \(Policy.maximumByteCount) bytes")
        }
        do {
            return try Policy(json: Array(text.utf8), kind: .resource)
        } catch {
            throw KMSError(.malformedPolicyDocument, error.reason)
        }
    }
}

extension KMSEngine {
    /// What AWS checks of a new key policy besides its syntax: that the principals it names
    /// exist, and (unless bypassed) that it lets the caller change it again — so nobody locks
    /// everyone, themselves included, out of a key by mistake.
    func checkKeyPolicy(_ key: LiveKey, caller: Caller, bypassLockoutCheck: Bool, in state: EngineState) throws(KMSError) {
        for statement in key.policy.statements {
            let patterns: [Policy.PrincipalPattern]
            switch statement.principal {
            case let .any(of: list)?, let .none(of: list)?: patterns = list
            case nil: patterns = []
            }
            for case let .aws(text) in patterns where !principalExists(text, in: state) {
                throw KMSError(.malformedPolicyDocument, "Policy contains a statement with one or more invalid principals.")
            }
        }
        guard !bypassLockoutCheck else { return }
        let target = AuthorizationTarget.key(key, grants: nil)
        guard decide(.putKeyPolicy, caller, target: target, in: state).allowed else {
            throw KMSError(.malformedPolicyDocument,
                           "The new key policy will not allow you to update the key policy in the future.")
        }
    }

    /// Whether a principal a policy names exists: an account ID or root ARN of any account (other
    /// services' accounts are not known here), a user or role of a known account only if it is
    /// in the store, an assumed-role session of an existing role.
    func principalExists(_ text: String, in state: EngineState) -> Bool {
        let parts = text.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 6 else { return true }  // an account ID
        let account = parts[4], resource = parts[5]
        guard state.accounts[account] != nil else { return true }
        if resource == "root" { return true }
        if let role = PrincipalARN.role(ofSession: text) { return state.identities[role] != nil }
        if resource.hasPrefix("user/") || resource.hasPrefix("role/") {
            // IAM paths (`user/division/name`): the name is the last component.
            let kind = String(resource.prefix(4)) == "user" ? "user" : "role"
            let name = resource.split(separator: "/").last.map(String.init) ?? ""
            return state.identities["arn:aws:iam::\(account):\(kind)/\(name)"] != nil
        }
        return true
    }
}
