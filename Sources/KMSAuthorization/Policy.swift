/// A policy in the IAM policy language, as key policies, identity policies and endpoint
/// policies are written. Parsed by ``Policy/init(json:)``; evaluated by ``Evaluator``.
public struct Policy: Sendable, Equatable {
    public var version: String?
    public var statements: [Statement]

    /// AWS's limit on a key policy.
    public static let maximumByteCount = 32 * 1024

    /// A class, immutable: evaluating a request walks every statement and every condition, and
    /// a struct would be copied (its strings and lists retained) at each step.
    public final class Statement: Sendable, Equatable {
        public enum Effect: String, Sendable { case allow = "Allow", deny = "Deny" }
        public let sid: String?
        public let effect: Effect
        /// Who the statement is about; nil in identity policies (the identity they are attached to).
        public let principal: Match<PrincipalPattern>?
        public let action: Match<String>
        /// nil when the statement names no resource (key policies: the key itself).
        public let resource: Match<String>?
        public let conditions: [Condition]

        public init(sid: String?, effect: Effect, principal: Match<PrincipalPattern>?, action: Match<String>, resource: Match<String>?,
                    conditions: [Condition]) {
            self.sid = sid
            self.effect = effect
            self.principal = principal
            self.action = action
            self.resource = resource
            self.conditions = conditions
        }

        public static func == (a: Statement, b: Statement) -> Bool {
            a.sid == b.sid && a.effect == b.effect && a.principal == b.principal && a.action == b.action && a.resource == b.resource
                && a.conditions == b.conditions
        }
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
    public final class Condition: Sendable, Equatable {
        public enum SetQualifier: Sendable { case none, forAnyValue, forAllValues }
        public let `operator`: ConditionOperator
        public let qualifier: SetQualifier
        /// `...IfExists`: a missing key satisfies the condition.
        public let ifExists: Bool
        public let key: String
        public let values: [String]
        /// `key` as requests are looked up by (``AuthorizationRequest/normalized(_:)``), made once.
        let normalizedKey: String

        public init(operator: ConditionOperator, qualifier: SetQualifier, ifExists: Bool, key: String, values: [String]) {
            self.operator = `operator`
            self.qualifier = qualifier
            self.ifExists = ifExists
            self.key = key
            self.values = values
            self.normalizedKey = AuthorizationRequest.normalized(key)
        }

        public static func == (a: Condition, b: Condition) -> Bool {
            a.operator == b.operator && a.qualifier == b.qualifier && a.ifExists == b.ifExists && a.key == b.key && a.values == b.values
        }
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
