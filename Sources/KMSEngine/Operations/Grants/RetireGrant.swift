import KMSAuthorization

extension KMSEngine {
    /// RetireGrant: the grant's end, by its token or by key and grant ID, at the hands of its
    /// retiring principal, its grantee (when the grant allows RetireGrant), or the root of the
    /// account it lives in — as AWS, whatever the key policy says.
    public func retireGrant(grantToken: String? = nil, keyID: String? = nil, grantID: String? = nil,
                            caller: Caller) throws {
        try manage(.retireGrant, caller) { record, state in
            let grant: GrantRecord
            if let grantToken {
                try Self.validateGrantToken(grantToken)
                guard let found = state.grants.values.lazy.flatMap(\.values).first(where: { $0.token == grantToken }) else {
                    throw KMSError(.invalidGrantToken, "The grant token is not valid (the grant may have been retired or revoked)")
                }
                grant = found
            } else if let keyID, let grantID {
                let key = try resolve(keyID, for: caller, allowAlias: false, in: state)
                guard let found = state.grants[key.record.identity]?[grantID] else {
                    throw KMSError(.notFound, "Grant ID \(grantID) not found")
                }
                grant = found
            } else {
                throw KMSError(.validation, "RetireGrant takes GrantToken, or KeyId and GrantId")
            }
            record.keyARN = grant.keyARN
            let role = caller.roleARN
            let reason: String?
            if grant.retiringPrincipal == caller.principal || (role != nil && grant.retiringPrincipal == role) {
                reason = "retiring principal"
            } else if grant.operations.contains("RetireGrant"), grant.granteeIsCurrent(in: state),
                      grant.grant.allows(AuthorizationRequest(principal: .init(arn: caller.principal, account: caller.account, roleARN: role),
                                                              action: KMSAction.retireGrant.rawValue, resource: grant.keyARN), context: nil) {
                reason = "grantee with RetireGrant"
            } else if caller.principal == "arn:aws:iam::\(grant.issuingAccount):root" {
                reason = "root of the grant's account"
            } else {
                reason = nil
            }
            let entry = "\(reason == nil ? "denied" : "allowed") kms:RetireGrant on grant \(grant.grantID): \(reason ?? "neither retiring principal, grantee with RetireGrant, nor the account root")"
            record.decision = entry
            guard reason != nil else {
                throw KMSError(.accessDenied, "User: \(caller.principal) is not authorized to perform: kms:RetireGrant on resource: \(grant.keyARN)")
            }
            // Who may retire is the grant's to say, but an endpoint policy still bounds what
            // comes through its listener.
            if let policy = caller.endpointPolicy {
                let values = ConditionValues(caller: caller, role: role, key: grant.keyIdentity.flatMap { state.keys[$0] }, context: nil, extra: [:],
                                             now: clock.now(), principalTags: state.identities[role ?? caller.principal]?.record.tags ?? [],
                                             aliases: state.aliases)
                let request = AuthorizationRequest(principal: .init(arn: caller.principal, account: caller.account, roleARN: role),
                                                   action: KMSAction.retireGrant.rawValue, resource: grant.keyARN, source: values)
                guard case .allowed = Evaluator.evaluate(policy, request) else {
                    record.decision = "denied kms:RetireGrant on grant \(grant.grantID): the endpoint policy does not allow it"
                    throw KMSError(.accessDenied, "User: \(caller.principal) is not authorized to perform: kms:RetireGrant on resource: \(grant.keyARN) because no VPC endpoint policy allows the kms:RetireGrant action")
                }
            }
            try Self.endDryRun(caller)
            return ((), removeGrant(grant, from: &state, record: &record))
        }
    }

    /// RevokeGrant: removes a grant, for who the key policy allows kms:RevokeGrant.
    public func revokeGrant(keyID: String, grantID: String, caller: Caller) throws {
        try manage(.revokeGrant, caller) { record, state in
            let key = try managedKey(keyID, action: .revokeGrant, for: caller, in: state, record: &record)
            guard let grant = state.grants[key.record.identity]?[grantID] else {
                throw KMSError(.notFound, "Grant ID \(grantID) not found")
            }
            try Self.endDryRun(caller)
            return ((), removeGrant(grant, from: &state, record: &record))
        }
    }

    private func removeGrant(_ grant: GrantRecord, from state: inout EngineState, record: inout AuditRecord) -> [StoreChange] {
        if let key = grant.keyIdentity {
            state.grants[key]?[grant.grantID] = nil
            if state.grants[key]?.isEmpty == true { state.grants[key] = nil }
        }
        record.note = "grant \(grant.grantID)"
        return [.deleteGrant(grantID: grant.grantID)]
    }

    /// Grant tokens as a request carries them (`GrantTokens`, RetireGrant's `GrantToken`): at
    /// most 10, each 1–8192 characters and one this service issued. Grants here are usable the
    /// moment CreateGrant returns, so a token has nothing more to do than be well formed.
    public static func validateGrantToken(_ token: String) throws(KMSError) {
        try Validate.length(token, "grantToken", 1...8192)
        guard token.hasPrefix(grantTokenPrefix) else { throw KMSError(.invalidGrantToken, "The grant token is not valid") }
    }

    public static func validateGrantTokens(_ tokens: [String]) throws(KMSError) {
        guard tokens.count <= 10 else { throw KMSError.constraint(tokens.count, member: "grantTokens", "Member must have length less than or equal to 10") }
        for token in tokens { try validateGrantToken(token) }
    }
}
