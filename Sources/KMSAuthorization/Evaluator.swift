/// Evaluates one policy for one request: a pure function, no store, no network.
///
/// A statement applies when its principal, action and resource match and every condition holds.
/// An applying Deny wins over any Allow; without one, an applying Allow allows — directly when
/// it names the caller (or everyone), or by delegation when it names the caller's account, in
/// which case the account's identity policies must allow too (AWS's "the key policy gives the
/// account access"). How key policy, identity policies, grants and endpoint policies combine is
/// the caller's to combine (issue 15: the engine's decision point, next).
public enum Evaluator {
    public enum Outcome: Sendable, Equatable {
        /// An applying Deny (its Sid, if it has one).
        case denied(sid: String?)
        /// An applying Allow; `delegated` when it applies only by naming the caller's account.
        case allowed(sid: String?, delegated: Bool)
        /// No statement applies: denied implicitly, unless something else allows.
        case notApplicable
    }

    public static func evaluate(_ policy: Policy, _ request: AuthorizationRequest) -> Outcome {
        var allow: (sid: String?, delegated: Bool)?
        for statement in policy.statements {
            guard let principal = principalMatch(statement.principal, request.principal),
                  matches(statement.action, { Wildcard.matches($0, request.action, ignoringCase: true) }),
                  statement.resource.map({ resource in
                      matches(resource) { pattern in
                          substituted(pattern, request, enabled: policy.version == "2012-10-17").map { Wildcard.matches($0, request.resource) } ?? false
                      }
                  }) ?? true,
                  statement.conditions.allSatisfy({ $0.isSatisfied(by: request) })
            else { continue }
            switch statement.effect {
            case .deny: return .denied(sid: statement.sid)
            case .allow:
                let delegated = principal == .account
                // A direct allow is kept over a delegated one.
                if allow == nil || (allow!.delegated && !delegated) { allow = (statement.sid, delegated) }
            }
        }
        return allow.map { .allowed(sid: $0.sid, delegated: $0.delegated) } ?? .notApplicable
    }

    enum PrincipalMatch { case direct, account }

    /// A resource pattern with its policy variables (`${aws:username}`, `${aws:PrincipalTag/team}`)
    /// replaced by the request's values, as IAM does in 2012-10-17 policies; `${*}`, `${?}` and
    /// `${$}` stand for the literal characters. Nil when a variable has no value: the pattern
    /// then matches nothing. Replaced values cannot act as wildcards.
    static func substituted(_ pattern: String, _ request: AuthorizationRequest, enabled: Bool) -> String? {
        // A byte scan first: this runs for every resource of every statement, and almost none has a variable.
        guard enabled, pattern.utf8.contains(UInt8(ascii: "$")), pattern.contains("${") else { return pattern }
        var out = ""
        var rest = Substring(pattern)
        while let start = rest.range(of: "${") {
            out += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else { return out + rest[start.lowerBound...] }
            let name = String(rest[start.upperBound..<end])
            switch name {
            case "*", "?", "$": out += Wildcard.literal(name)
            default:
                guard let value = request.values(for: name)?.first else { return nil }
                out += Wildcard.escaped(value)
            }
            rest = rest[rest.index(after: end)...]
        }
        return out + rest
    }

    /// How `pattern` names `principal`, or nil if it does not. No `Principal` element (an
    /// identity policy) names the identity it is attached to: direct.
    static func principalMatch(_ match: Policy.Match<Policy.PrincipalPattern>?, _ principal: AuthorizationRequest.Principal) -> PrincipalMatch? {
        guard let match else { return .direct }
        switch match {
        case let .any(patterns):
            var found: PrincipalMatch?
            for pattern in patterns {
                switch names(pattern, principal) {
                case .direct?: return .direct
                case .account?: found = .account
                case nil: break
                }
            }
            return found
        case let .none(patterns):
            // NotPrincipal excludes only whom it names itself: an account's root ARN excludes the
            // root, not the account's users (AWS: list both the user and the account to spare a user).
            return patterns.contains { names($0, principal) == .direct } ? nil : .direct
        }
    }

    static func names(_ pattern: Policy.PrincipalPattern, _ principal: AuthorizationRequest.Principal) -> PrincipalMatch? {
        switch pattern {
        case .everyone: return .direct
        case let .service(name): return principal.service == name ? .direct : nil
        case let .aws(text):
            guard principal.service == nil else { return nil }
            if text == principal.account || text == principal.rootARN {
                return principal.arn == principal.rootARN ? .direct : .account
            }
            return text == principal.arn || text == principal.roleARN ? .direct : nil
        }
    }

    static func matches(_ match: Policy.Match<String>, _ test: (String) -> Bool) -> Bool {
        switch match {
        case let .any(patterns): return patterns.contains(where: test)
        case let .none(patterns): return !patterns.contains(where: test)
        }
    }
}
