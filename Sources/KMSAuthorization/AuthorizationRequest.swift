/// Who asks to do what to which resource, with the condition keys the request carries: all an
/// evaluation sees. Built by the engine (or a test); the evaluator reads nothing else.
public struct AuthorizationRequest: Sendable, Equatable {
    public struct Principal: Sendable, Equatable {
        /// `arn:aws:iam::ACCOUNT:root`, `...:user/NAME`, `...:role/NAME`, or
        /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`; for a service, its name.
        public var arn: String
        public var account: String
        /// For an assumed-role session, the role's ARN (a policy naming the role names its sessions).
        public var roleARN: String?
        /// For an AWS service calling on its own behalf (`kms.amazonaws.com`).
        public var service: String?

        public init(arn: String, account: String, roleARN: String? = nil, service: String? = nil) {
            self.arn = arn
            self.account = account
            self.roleARN = roleARN
            self.service = service
        }
    }

    public var principal: Principal
    /// `kms:Decrypt`, `kms:ReEncryptFrom`, ...
    public var action: String
    /// The key's ARN.
    public var resource: String
    /// Condition keys, looked up without regard to case (`kms:EncryptionContext:Name` keeps the
    /// case of its context key, as AWS compares context keys case-sensitively).
    public private(set) var values: [String: [String]]

    public init(principal: Principal, action: String, resource: String, values: [String: [String]] = [:]) {
        self.principal = principal
        self.action = action
        self.resource = resource
        self.values = [:]
        for (key, value) in values { self.values[Self.normalized(key)] = value }
    }

    /// The values of condition key `key`, or nil when the request does not carry it.
    public func values(for key: String) -> [String]? { values[Self.normalized(key)] }

    /// Condition key names are case-insensitive, except the part after
    /// `kms:EncryptionContext:` (an encryption context key is compared as written).
    static func normalized(_ key: String) -> String {
        let prefix = "kms:encryptioncontext:"
        if key.lowercased().hasPrefix(prefix) { return prefix + key.dropFirst(prefix.count) }
        return key.lowercased()
    }
}
