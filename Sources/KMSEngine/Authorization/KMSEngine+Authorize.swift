import Foundation
import KMSAuthorization

/// An IAM user or role as the engine serves it: its record with its policies parsed once.
final class LiveIdentity: Sendable {
    let record: IdentityRecord
    let policies: [(name: String, policy: Policy)]
    let trustPolicy: Policy?

    init(record: IdentityRecord) {
        self.record = record
        // Stored policies were parsed when they were put; one that no longer parses (a later,
        // stricter parser) grants nothing rather than stopping the service.
        policies = record.policies.sorted { $0.key < $1.key }.compactMap { name, text in
            (try? Policy(json: Array(text.utf8), kind: .identity)).map { (name, $0) }
        }
        trustPolicy = record.trustPolicy.flatMap { try? Policy(json: Array($0.utf8)) }
    }
}

extension KMSEngine {
    /// The one authorization decision point: every operation asks it, before it reads or
    /// changes anything the caller may not see. Records the decision in `record`, throws
    /// AccessDeniedException with AWS's wording when the answer is no.
    ///
    /// - Parameters:
    ///   - extra: condition keys only this operation knows (`kms:GrantOperations`,
    ///     `kms:EncryptionAlgorithm`, `kms:RequestAlias`, `aws:RequestTag/…`), normalized names.
    @discardableResult
    func authorize(_ action: KMSAction, _ caller: Caller, target: AuthorizationTarget, context: EncryptionContext? = nil,
                   extra: [String: [String]] = [:], in state: EngineState, record: inout AuditRecord) throws(KMSError) -> AccessDecision {
        assert(KMSOperation(rawValue: record.operation).map { $0.actions.contains(action) } ?? true,
               "\(record.operation) authorizes \(action.rawValue), which KMSOperation does not declare for it")
        let decision = decide(action, caller, target: target, context: context, extra: extra, in: state)
        // The record names its key already; another resource (ReEncrypt's second key, an alias,
        // a role) is named in the entry.
        // The operation's own action goes without saying (ReEncrypt names both of its).
        let own = action.rawValue.utf8.count == record.operation.utf8.count + 4 && action.rawValue.hasSuffix(record.operation)
        let entry: String
        if own && target.arn == record.keyARN {
            entry = (decision.allowed ? "allowed: " : "denied: ") + decision.reason
        } else {
            entry = (decision.allowed ? "allowed " : "denied ") + action.rawValue + (target.arn == record.keyARN ? "" : " on " + target.arn)
                + ": " + decision.reason
        }
        record.decision = record.decision.map { $0 + "; " + entry } ?? entry
        guard decision.allowed else { throw KMSError(.accessDenied, decision.message ?? "access denied") }
        return decision
    }

    /// Authorizes `action` on `key`, with its grants.
    @discardableResult
    func authorize(_ action: KMSAction, _ caller: Caller, key: LiveKey, context: EncryptionContext? = nil, extra: [String: [String]] = [:],
                   in state: EngineState, record: inout AuditRecord) throws(KMSError) -> AccessDecision {
        try authorize(action, caller, target: .key(key, grants: state.grants[key.record.identity], in: state), context: context, extra: extra,
                      in: state, record: &record)
    }

    /// The decision without recording it (the lockout check asks "would this be allowed").
    func decide(_ action: KMSAction, _ caller: Caller, target: AuthorizationTarget, context: EncryptionContext? = nil,
                extra: [String: [String]] = [:], in state: EngineState) -> AccessDecision {
        let role = caller.roleARN
        // The user or role the caller acts as (a session acts as its role); none for an account
        // root, or a user with no record (an access key made for a user name before users had records).
        let identity = state.identities[role ?? caller.principal]
        let principal = AuthorizationRequest.Principal(arn: caller.principal, account: caller.account, roleARN: role)
        let values = ConditionValues(caller: caller, role: role, key: target.key, context: context, extra: extra, now: clock.now(),
                                     principalTags: identity?.record.tags ?? [], aliases: state.aliases)
        let request = AuthorizationRequest(principal: principal, action: action.rawValue, resource: target.arn, source: values)
        let identityPolicies: [(name: String, policy: Policy)]? = principal.isAccountRoot ? nil : (identity?.policies ?? [])
        return AccessEvaluation.decide(.init(
            request: request, resourceAccount: target.account, resourcePolicy: target.policy, resourcePolicyName: target.policyName,
            identityPolicies: identityPolicies, endpointPolicy: caller.endpointPolicy, grants: target.grants.map(\.grant),
            context: context))
    }
}

/// The condition keys of one request, computed when a policy asks (see ``AuthorizationRequest``).
/// A class: the lookup closure holds one reference rather than a copy of every field.
final class ConditionValues: ConditionSource {
    let caller: Caller
    /// The caller's role, for a session.
    let role: String?
    let live: LiveKey?
    let context: EncryptionContext?
    let extra: [String: [String]]
    let now: Date
    let principalTags: [Tag]
    let aliases: [EngineState.AliasID: AliasRecord]

    init(caller: Caller, role: String?, key: LiveKey?, context: EncryptionContext?, extra: [String: [String]], now: Date,
         principalTags: [Tag], aliases: [EngineState.AliasID: AliasRecord]) {
        self.caller = caller
        self.role = role
        self.live = key
        self.context = context
        self.extra = extra
        self.now = now
        self.principalTags = principalTags
        self.aliases = aliases
    }

    func values(normalized name: String) -> [String]? {
        let key = live?.record
        // The context keys first: the conditions most policies have.
        if name.utf8.count > 22, name.hasPrefix("kms:encryptioncontext:") {
            return context?[String(name.dropFirst("kms:encryptioncontext:".count))].map { [$0] }
        }
        switch name {
        case "kms:calleraccount", "aws:principalaccount": return [caller.account]
        case "kms:viaservice": return caller.viaService.map { [$0] }
        case "kms:encryptioncontextkeys": return context.map { Array($0.keys) }
        case "kms:keyspec": return key.map { [$0.spec.rawValue] }
        case "kms:keyusage": return key.map { [$0.usage.rawValue] }
        case "kms:keyorigin": return key.map { [$0.origin.rawValue] }
        case "kms:multiregion": return key.map { [$0.multiRegion ? "true" : "false"] }
        case "kms:resourcealiases":
            guard let key else { return nil }
            return aliases.values.filter { $0.targetKeyID == key.keyID }.map(\.aliasName)
        case "aws:principalarn": return [role ?? caller.principal]
        case "aws:principaltype": return [PrincipalARN.type(caller.principal)]
        case "aws:username": return PrincipalARN.userName(caller.principal).map { [$0] }
        case "aws:sourceip": return caller.sourceIP.map { [$0] }
        case "aws:securetransport": return caller.secureTransport.map { [$0 ? "true" : "false"] }
        case "aws:viaawsservice": return [caller.isViaTrustedService ? "true" : "false"]
        case "aws:currenttime": return [ISO8601DateFormatter().string(from: now)]
        case "aws:epochtime": return [String(Int(now.timeIntervalSince1970))]
        case "aws:requestedregion": return [caller.region]
        default: break
        }
        if name.hasPrefix("aws:principaltag/") {
            let tag = name.dropFirst("aws:principaltag/".count)
            return principalTags.first { $0.tagKey.lowercased() == tag }.map { [$0.tagValue] }
        }
        if name.hasPrefix("aws:resourcetag/") {
            let tag = name.dropFirst("aws:resourcetag/".count)
            return key?.tags.first { $0.tagKey.lowercased() == tag }.map { [$0.tagValue] }
        }
        return extra[name]
    }
}
