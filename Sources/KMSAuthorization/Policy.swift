/// A policy in the IAM policy language, as key policies, identity policies and endpoint
/// policies are written. Parsed by ``Policy/init(json:)``; evaluated by ``Evaluator``.
public struct Policy: Sendable, Equatable {
    public var version: String?
    public var statements: [Statement]

    /// AWS's limit on a key policy.
    public static let maximumByteCount = 32 * 1024

    public struct Statement: Sendable, Equatable {
        public enum Effect: String, Sendable { case allow = "Allow", deny = "Deny" }
        public var sid: String?
        public var effect: Effect
        /// Who the statement is about; nil in identity policies (the identity they are attached to).
        public var principal: Match<PrincipalPattern>?
        public var action: Match<String>
        /// nil when the statement names no resource (key policies: the key itself).
        public var resource: Match<String>?
        public var conditions: [Condition]
    }

    /// A list of patterns, or their negation (`NotAction`, `NotPrincipal`, `NotResource`).
    public enum Match<Pattern: Sendable & Equatable>: Sendable, Equatable {
        case any(of: [Pattern])
        case none(of: [Pattern])
    }

    /// One entry of `Principal`: `"*"`, or an AWS principal (account ID or ARN), or a service.
    public enum PrincipalPattern: Sendable, Equatable {
        case everyone
        case aws(String)
        case service(String)
    }

    /// One operator applied to one condition key: `"StringEquals": {"kms:CallerAccount": ["1"]}`.
    public struct Condition: Sendable, Equatable {
        public enum SetQualifier: Sendable { case none, forAnyValue, forAllValues }
        public var `operator`: ConditionOperator
        public var qualifier: SetQualifier
        /// `...IfExists`: a missing key satisfies the condition.
        public var ifExists: Bool
        public var key: String
        public var values: [String]
    }
}

/// The condition operators of the IAM policy language.
public enum ConditionOperator: String, Sendable, CaseIterable {
    case stringEquals = "StringEquals", stringNotEquals = "StringNotEquals"
    case stringEqualsIgnoreCase = "StringEqualsIgnoreCase", stringNotEqualsIgnoreCase = "StringNotEqualsIgnoreCase"
    case stringLike = "StringLike", stringNotLike = "StringNotLike"
    case numericEquals = "NumericEquals", numericNotEquals = "NumericNotEquals"
    case numericLessThan = "NumericLessThan", numericLessThanEquals = "NumericLessThanEquals"
    case numericGreaterThan = "NumericGreaterThan", numericGreaterThanEquals = "NumericGreaterThanEquals"
    case dateEquals = "DateEquals", dateNotEquals = "DateNotEquals"
    case dateLessThan = "DateLessThan", dateLessThanEquals = "DateLessThanEquals"
    case dateGreaterThan = "DateGreaterThan", dateGreaterThanEquals = "DateGreaterThanEquals"
    case bool = "Bool"
    case ipAddress = "IpAddress", notIpAddress = "NotIpAddress"
    case arnEquals = "ArnEquals", arnNotEquals = "ArnNotEquals", arnLike = "ArnLike", arnNotLike = "ArnNotLike"
    case null = "Null"

    /// The negated operators: true when no value matches (and, for a missing key, true).
    var isNegated: Bool {
        switch self {
        case .stringNotEquals, .stringNotEqualsIgnoreCase, .stringNotLike, .numericNotEquals, .dateNotEquals, .notIpAddress,
             .arnNotEquals, .arnNotLike: return true
        default: return false
        }
    }
}
