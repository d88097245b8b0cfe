/// Who asks to do what to which resource, with the condition keys the request carries: all an
/// evaluation sees. Built by the engine (or a test); the evaluator reads nothing else.
public struct AuthorizationRequest: Sendable {
    public struct Principal: Sendable, Equatable {
        /// `arn:aws:iam::ACCOUNT:root`, `...:user/NAME`, `...:role/NAME`, or
        /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`; for a service, its name.
        public var arn: String
        public var account: String
        /// For an assumed-role session, the role's ARN (a policy naming the role names its sessions).
        public var roleARN: String?
        /// For an AWS service calling on its own behalf (`kms.amazonaws.com`).
        public var service: String?

        /// `arn:aws:iam::ACCOUNT:root`, made once (every statement naming an account compares it).
        public let rootARN: String

        public init(arn: String, account: String, roleARN: String? = nil, service: String? = nil) {
            self.arn = arn
            self.account = account
            self.roleARN = roleARN
            self.service = service
            self.rootARN = "arn:aws:iam::\(account):root"
        }

        /// Whether this is the account's root principal (`arn:aws:iam::ACCOUNT:root`).
        public var isAccountRoot: Bool { service == nil && arn == rootARN }
    }

    public var principal: Principal
    /// `kms:Decrypt`, `kms:ReEncryptFrom`, ...
    public var action: String
    /// The resource's ARN (a key's, a role's), or `*` for account-level actions.
    public var resource: String
    /// Condition key → values, given the normalized key (``normalized(_:)``), computed only for
    /// the keys a policy asks about (most requests meet policies with few or no conditions, and
    /// this is on the path of every cryptographic call).
    private let source: any ConditionSource

    /// A request whose condition keys are all given up front (tests, rarely-called operations).
    public init(principal: Principal, action: String, resource: String, values: [String: [String]] = [:]) {
        var normalizedValues: [String: [String]] = [:]
        for (key, value) in values { normalizedValues[Self.normalized(key)] = value }
        self.init(principal: principal, action: action, resource: resource, source: GivenValues(values: normalizedValues))
    }

    /// A request whose condition keys `source` computes on demand (given normalized keys).
    public init(principal: Principal, action: String, resource: String, source: any ConditionSource) {
        self.principal = principal
        self.action = action
        self.resource = resource
        self.source = source
    }

    /// The values of condition key `key`, or nil when the request does not carry it.
    public func values(for key: String) -> [String]? { source.values(normalized: Self.normalized(key)) }

    /// The same, for a key already normalized (conditions normalize theirs when parsed).
    func values(forNormalized key: String) -> [String]? { source.values(normalized: key) }

    /// Condition key names are case-insensitive, except the part after
    /// `kms:EncryptionContext:` (an encryption context key is compared as written).
    public static func normalized(_ key: String) -> String {
        let prefix = "kms:encryptioncontext:"
        if key.utf8.count > prefix.utf8.count, key.lowercased().hasPrefix(prefix) { return prefix + key.dropFirst(prefix.count) }
        return key.lowercased()
    }
}

/// Where a request's condition keys come from: an object, so that a request holds one reference
/// (no closure context to allocate per request).
public protocol ConditionSource: AnyObject, Sendable {
    /// The values of a condition key (normalized, ``AuthorizationRequest/normalized(_:)``), or nil.
    func values(normalized key: String) -> [String]?
}

/// Condition keys given up front.
final class GivenValues: ConditionSource {
    let values: [String: [String]]
    init(values: [String: [String]]) { self.values = values }
    func values(normalized key: String) -> [String]? { values[key] }
}
