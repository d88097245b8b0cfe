import KMSJSON

/// Why a policy document is refused (`MalformedPolicyDocumentException` with this reason).
public struct PolicyError: Error, Equatable, Sendable, CustomStringConvertible {
    public let reason: String
    init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

extension Policy {
    /// Where a policy is attached decides what its statements must say: a resource policy (a key
    /// policy) names principals; an identity policy must not, and names resources.
    public enum Kind: Sendable { case resource, identity }

    /// Parses a policy document as AWS does, refusing what AWS refuses (unknown elements,
    /// duplicate Sids, a missing Effect or Action, Principal in the wrong kind of policy).
    public init(json bytes: [UInt8], kind: Kind = .resource) throws(PolicyError) {
        guard bytes.count <= Self.maximumByteCount else { throw PolicyError("the policy is longer than \(Self.maximumByteCount) bytes") }
        let value: JSONValue
        do { value = try JSONParser.parse(bytes) } catch { throw PolicyError("the policy is not valid JSON: \(error)") }
        guard case let .object(members) = value else { throw PolicyError("the policy must be a JSON object") }
        var version: String?, statements: [Statement]?
        for (name, member) in members {
            switch name {
            case "Version":
                guard case let .string(text) = member, ["2012-10-17", "2008-10-17"].contains(text) else {
                    throw PolicyError("Version must be 2012-10-17 or 2008-10-17")
                }
                version = text
            case "Id":
                guard case .string = member else { throw PolicyError("Id must be a string") }
            case "Statement":
                switch member {
                case .object: statements = [try Statement(member, kind: kind)]
                case let .array(items) where !items.isEmpty: statements = try items.map { (item) throws(PolicyError) in try Statement(item, kind: kind) }
                default: throw PolicyError("Statement must be an object or a non-empty list of objects")
                }
            default:
                throw PolicyError("the policy has an unknown element \(name)")
            }
        }
        guard let statements else { throw PolicyError("the policy has no Statement") }
        var sids = Set<String>()
        for sid in statements.compactMap(\.sid) where !sids.insert(sid).inserted {
            throw PolicyError("Statement IDs (SID) must be unique: \(sid)")
        }
        self.version = version
        self.statements = statements
    }
}

extension Policy.Statement {
    convenience init(_ value: JSONValue, kind: Policy.Kind) throws(PolicyError) {
        guard case let .object(members) = value else { throw PolicyError("each Statement must be an object") }
        var sid: String?, effect: Effect?, principal: Policy.Match<Policy.PrincipalPattern>?
        var action: Policy.Match<String>?, resource: Policy.Match<String>?, conditions: [Policy.Condition] = []
        for (name, member) in members {
            switch name {
            case "Sid":
                guard case let .string(text) = member else { throw PolicyError("Sid must be a string") }
                sid = text
            case "Effect":
                guard case let .string(text) = member, let parsed = Effect(rawValue: text) else { throw PolicyError("Effect must be Allow or Deny") }
                effect = parsed
            case "Principal", "NotPrincipal":
                guard kind == .resource else { throw PolicyError("\(name) is not allowed in an identity policy") }
                guard principal == nil else { throw PolicyError("a statement has both Principal and NotPrincipal") }
                let patterns = try Self.principals(member)
                principal = name == "Principal" ? .any(of: patterns) : .none(of: patterns)
            case "Action", "NotAction":
                guard action == nil else { throw PolicyError("a statement has both Action and NotAction") }
                let patterns = try Self.strings(member, element: name)
                for pattern in patterns where pattern != "*" && !pattern.contains(":") {
                    throw PolicyError("Action \(pattern) must be a service prefix and action, like kms:Decrypt")
                }
                action = name == "Action" ? .any(of: patterns) : .none(of: patterns)
            case "Resource", "NotResource":
                guard resource == nil else { throw PolicyError("a statement has both Resource and NotResource") }
                let patterns = try Self.strings(member, element: name)
                resource = name == "Resource" ? .any(of: patterns) : .none(of: patterns)
            case "Condition":
                conditions = try Self.conditions(member)
            default:
                throw PolicyError("a statement has an unknown element \(name)")
            }
        }
        guard let effect else { throw PolicyError("a statement has no Effect") }
        guard let action else { throw PolicyError("a statement has no Action or NotAction") }
        if kind == .resource && principal == nil { throw PolicyError("a statement in a key policy must name a Principal") }
        if kind == .identity && resource == nil { throw PolicyError("a statement in an identity policy must name a Resource") }
        self.init(sid: sid, effect: effect, principal: principal, action: action, resource: resource, conditions: conditions)
    }

    static func strings(_ value: JSONValue, element: String) throws(PolicyError) -> [String] {
        switch value {
        case let .string(text): return [text]
        case let .array(items) where !items.isEmpty:
            return try items.map { (item) throws(PolicyError) in
                guard case let .string(text) = item else { throw PolicyError("\(element) must be a string or a list of strings") }
                return text
            }
        default: throw PolicyError("\(element) must be a string or a non-empty list of strings")
        }
    }

    static func principals(_ value: JSONValue) throws(PolicyError) -> [Policy.PrincipalPattern] {
        if case .string("*") = value { return [.everyone] }
        guard case let .object(members) = value, !members.isEmpty else {
            throw PolicyError("Principal must be \"*\" or an object like {\"AWS\": ...}")
        }
        var patterns: [Policy.PrincipalPattern] = []
        for (type, list) in members {
            for entry in try strings(list, element: "Principal \(type)") {
                switch type {
                case "AWS":
                    // A unique ID is what a policy shows for a user or role since deleted: it
                    // names nobody alive, and a policy read back must be accepted as it reads.
                    guard entry == "*" || isAccountID(entry) || entry.hasPrefix("arn:") || isUniqueID(entry) else {
                        throw PolicyError("Policy contains a statement with one or more invalid principals: \(entry)")
                    }
                    patterns.append(entry == "*" ? .everyone : .aws(entry))
                case "Service": patterns.append(.service(entry))
                default: throw PolicyError("Principal type \(type) is not supported (AWS or Service)")
                }
            }
        }
        return patterns
    }

    static func isAccountID(_ text: String) -> Bool { text.count == 12 && text.allSatisfy(\.isASCIIDigit) }

    /// An IAM user's or role's unique ID: `AIDA` or `AROA` and upper-case letters and digits.
    static func isUniqueID(_ text: String) -> Bool {
        (text.hasPrefix("AIDA") || text.hasPrefix("AROA")) && (16...128).contains(text.utf8.count)
            && text.utf8.allSatisfy { (65...90).contains($0) || (48...57).contains($0) }
    }

    static func conditions(_ value: JSONValue) throws(PolicyError) -> [Policy.Condition] {
        guard case let .object(operators) = value else { throw PolicyError("Condition must be an object") }
        var result: [Policy.Condition] = []
        for (name, keys) in operators {
            var text = Substring(name), qualifier = Policy.Condition.SetQualifier.none, ifExists = false
            if text.hasPrefix("ForAnyValue:") { qualifier = .forAnyValue; text = text.dropFirst("ForAnyValue:".count) }
            else if text.hasPrefix("ForAllValues:") { qualifier = .forAllValues; text = text.dropFirst("ForAllValues:".count) }
            if text.hasSuffix("IfExists") { ifExists = true; text = text.dropLast("IfExists".count) }
            guard let op = ConditionOperator(rawValue: String(text)), !(op == .null && ifExists) else {
                throw PolicyError("Condition operator \(name) is not supported")
            }
            guard case let .object(entries) = keys, !entries.isEmpty else { throw PolicyError("Condition \(name) must map keys to values") }
            for (key, list) in entries {
                let values: [String]
                switch list {
                case let .array(items) where !items.isEmpty:
                    values = try items.map { (item) throws(PolicyError) in try scalar(item, name: name) }
                default: values = [try scalar(list, name: name)]
                }
                if op == .ipAddress || op == .notIpAddress {
                    for value in values where CIDR(value) == nil {
                        throw PolicyError("Condition \(name) value \(value.prefix(64)) is not an IP address or CIDR range")
                    }
                }
                result.append(Policy.Condition(operator: op, qualifier: qualifier, ifExists: ifExists, key: key, values: values))
            }
        }
        return result
    }

    static func scalar(_ value: JSONValue, name: String) throws(PolicyError) -> String {
        switch value {
        case let .string(text): return text
        case let .number(text): return text
        case let .bool(flag): return flag ? "true" : "false"
        default: throw PolicyError("Condition \(name) values must be strings, numbers or booleans")
        }
    }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
