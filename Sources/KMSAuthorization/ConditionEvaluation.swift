import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension Policy.Condition {
    /// Whether the request satisfies this condition (IAM's rules for missing keys, negated
    /// operators, `...IfExists`, `ForAnyValue:` and `ForAllValues:`).
    func isSatisfied(by request: AuthorizationRequest) -> Bool {
        let present = request.values(forNormalized: normalizedKey)
        if `operator` == .null {
            // Null: "true" asks that the key be absent, "false" that it be present.
            let wantsAbsent = values.contains { $0.lowercased() == "true" }
            return wantsAbsent == (present == nil || present!.isEmpty)
        }
        guard let requestValues = present, !requestValues.isEmpty else {
            switch qualifier {
            case .forAllValues: return true  // vacuously: every one of no values matches
            case .forAnyValue: return false
            case .none: return ifExists || `operator`.isNegated
            }
        }
        let positive = `operator`.positive
        let policyValues = values
        let matches = { (value: String) in policyValues.contains { positive.matches(policy: $0, request: value) } }
        switch qualifier {
        case .forAnyValue:
            return `operator`.isNegated ? requestValues.contains { !matches($0) } : requestValues.contains(where: matches)
        case .forAllValues:
            return `operator`.isNegated ? requestValues.allSatisfy { !matches($0) } : requestValues.allSatisfy(matches)
        case .none:
            return `operator`.isNegated ? !requestValues.contains(where: matches) : requestValues.contains(where: matches)
        }
    }
}

extension ConditionOperator {
    /// The operator a negated one negates (StringNotEquals → StringEquals).
    var positive: ConditionOperator {
        switch self {
        case .stringNotEquals: return .stringEquals
        case .stringNotEqualsIgnoreCase: return .stringEqualsIgnoreCase
        case .stringNotLike: return .stringLike
        case .numericNotEquals: return .numericEquals
        case .dateNotEquals: return .dateEquals
        case .notIpAddress: return .ipAddress
        case .arnNotEquals: return .arnEquals
        case .arnNotLike: return .arnLike
        default: return self
        }
    }

    /// Whether one request value matches one policy value under this (positive) operator.
    func matches(policy: String, request: String) -> Bool {
        switch self {
        case .stringEquals: return policy == request
        case .stringEqualsIgnoreCase: return policy.lowercased() == request.lowercased()
        case .stringLike: return Wildcard.matches(policy, request)
        case .numericEquals, .numericLessThan, .numericLessThanEquals, .numericGreaterThan, .numericGreaterThanEquals:
            guard let p = Double(policy), let r = Double(request) else { return false }
            return compare(r, p)
        case .dateEquals, .dateLessThan, .dateLessThanEquals, .dateGreaterThan, .dateGreaterThanEquals:
            guard let p = Self.date(policy), let r = Self.date(request) else { return false }
            return compare(r, p)
        case .bool: return policy.lowercased() == request.lowercased()
        case .ipAddress: return CIDR(policy)?.contains(request) ?? false
        case .arnEquals, .arnLike: return Self.arnMatches(policy, request)
        default: return false
        }
    }

    private func compare(_ request: Double, _ policy: Double) -> Bool {
        switch self {
        case .numericEquals, .dateEquals: return request == policy
        case .numericLessThan, .dateLessThan: return request < policy
        case .numericLessThanEquals, .dateLessThanEquals: return request <= policy
        case .numericGreaterThan, .dateGreaterThan: return request > policy
        case .numericGreaterThanEquals, .dateGreaterThanEquals: return request >= policy
        default: return false
        }
    }

    /// Seconds since 1970 from an ISO 8601 date or time, or an epoch number.
    static func date(_ text: String) -> Double? {
        if let seconds = Double(text) { return seconds }
        let formatter = ISO8601DateFormatter()
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime], [.withInternetDateTime, .withFractionalSeconds], [.withFullDate]] {
            formatter.formatOptions = options
            if let date = formatter.date(from: text) { return date.timeIntervalSince1970 }
        }
        return nil
    }

    /// ARNs compare field by field (six colon-separated fields; the last may hold colons), each
    /// field a wildcard pattern, case-sensitively.
    static func arnMatches(_ pattern: String, _ arn: String) -> Bool {
        let p = pattern.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false)
        let a = arn.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false)
        guard p.count == 6, a.count == 6 else { return pattern == "*" }
        return zip(p, a).allSatisfy { Wildcard.matches(String($0), String($1)) }
    }
}

/// An IPv4 or IPv6 address range (`192.0.2.0/24`, `2001:db8::/32`, or one address).
struct CIDR {
    let network: [UInt8]
    let prefix: Int

    init?(_ text: String) {
        // "" and "/" split into nothing: no range, never a crash.
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let first = parts.first, let address = CIDR.bytes(String(first)) else { return nil }
        let bits = address.count * 8
        if parts.count == 2 {
            guard let prefix = Int(parts[1]), (0...bits).contains(prefix) else { return nil }
            self.prefix = prefix
        } else {
            self.prefix = bits
        }
        network = address
    }

    func contains(_ text: String) -> Bool {
        guard let address = CIDR.bytes(text), address.count == network.count else { return false }
        var remaining = prefix
        for (a, n) in zip(address, network) where remaining > 0 {
            let mask: UInt8 = remaining >= 8 ? 0xff : ~(0xff >> UInt8(remaining))
            if a & mask != n & mask { return false }
            remaining -= 8
        }
        return true
    }

    static func bytes(_ text: String) -> [UInt8]? {
        if text.contains(":") {
            var address = in6_addr()
            guard inet_pton(AF_INET6, text, &address) == 1 else { return nil }
            return withUnsafeBytes(of: &address) { Array($0) }
        }
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return nil }
        var result: [UInt8] = []
        for octet in octets {
            guard !octet.isEmpty, octet.count <= 3, octet.allSatisfy(\.isASCIIDigit), let value = UInt8(octet) else { return nil }
            result.append(value)
        }
        return result
    }
}
