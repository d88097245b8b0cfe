import Foundation
import KMSAuthorization
import KMSFSCrypto

/// IAM users and roles, and their inline policies: the subset of IAM kmsd serves (through its
/// IAM query endpoint and `kmsd admin`). Every change is authorized (`iam:*` for the caller's
/// own account; an account root may do all of it), audited and written through.
extension KMSEngine {
    /// IAM's quotas on inline policies: the sum of a user's policies, and of a role's.
    static let userPolicyBytes = 2048, rolePolicyBytes = 10_240, trustPolicyBytes = 2048

    /// Runs an IAM change on the caller's account after authorizing `action` on `arn`.
    func iamChange<R>(_ action: KMSAction, _ arn: String, _ caller: Caller,
                      _ body: (inout AuditRecord, inout EngineState) throws -> (R, [StoreChange])) throws -> R {
        try manage(action.operation, caller) { record, state in
            record.note = arn
            try authorize(action, caller, target: .iam(arn, account: caller.account), in: state, record: &record)
            return try body(&record, &state)
        }
    }

    /// Reads IAM state after authorizing `action` on `arn`.
    func iamRead<R>(_ action: KMSAction, _ arn: String, _ caller: Caller, _ body: (EngineState) throws -> R) throws -> R {
        try perform(action.operation, caller) { record, state in
            record.note = arn
            try authorize(action, caller, target: .iam(arn, account: caller.account), in: state, record: &record)
            return try body(state)
        }
    }

    /// CreateUser or CreateRole.
    public func createIdentity(_ kind: IdentityRecord.Kind, name: String, trustPolicy: String? = nil, description: String? = nil,
                               maxSessionDuration: Int? = nil, tags: [Tag] = [], caller: Caller) throws -> IdentityRecord {
        let arn = IdentityRecord.arn(kind, account: caller.account, name: name)
        return try iamChange(kind == .user ? .iamCreateUser : .iamCreateRole, arn, caller) { _, state in
            try Validate.iamName(name, "\(kind.rawValue) name", 64)
            try Validate.tags(tags)
            guard state.identities.keys.allSatisfy({ $0.lowercased() != arn.lowercased() }) else {
                throw KMSError(.entityAlreadyExists, "\(kind == .user ? "User" : "Role") with name \(name) already exists.")
            }
            var record = IdentityRecord(kind: kind, account: caller.account, name: name,
                                        id: (kind == .user ? "AIDA" : "AROA") + (try Self.randomIAMID()), creationDate: clock.now(),
                                        description: description, tags: tags, policies: [:])
            if kind == .role {
                guard let trustPolicy else { throw KMSError(.iamValidation, "CreateRole needs an AssumeRolePolicyDocument") }
                try Self.checkTrustPolicy(trustPolicy)
                let duration = maxSessionDuration ?? 3600
                guard (3600...43_200).contains(duration) else {
                    throw KMSError(.iamValidation, "MaxSessionDuration must be between 3600 and 43200 seconds")
                }
                record.trustPolicy = trustPolicy
                record.maxSessionDuration = duration
            }
            state.identities[arn] = LiveIdentity(record: record)
            return (record, [.putIdentity(record)])
        }
    }

    /// DeleteUser or DeleteRole: only once its policies (and a user's access keys) are gone, as IAM.
    public func deleteIdentity(_ kind: IdentityRecord.Kind, name: String, caller: Caller) throws {
        let arn = IdentityRecord.arn(kind, account: caller.account, name: name)
        try iamChange(kind == .user ? .iamDeleteUser : .iamDeleteRole, arn, caller) { _, state in
            let identity = try Self.identity(kind, name, caller.account, in: state)
            guard identity.record.policies.isEmpty else {
                throw KMSError(.deleteConflict, "Cannot delete entity, must delete policies first.")
            }
            if kind == .user, state.accessKeys.values.contains(where: { $0.record.principal == arn }) {
                throw KMSError(.deleteConflict, "Cannot delete entity, must delete access keys first.")
            }
            state.identities[arn] = nil
            var changes: [StoreChange] = [.deleteIdentity(arn: arn)]
            // Policies naming it now name its unique ID (PrincipalRetirement): key policies in any
            // account, and the trust policies of roles.
            let uniqueID = identity.record.id
            for (keyID, key) in state.keys where key.record.manager == .customer {
                guard let policy = PrincipalRetirement.retiring(arn, as: uniqueID, in: key.record.policy) else { continue }
                // The rewritten policy must still parse: one that did not would fall back to the
                // default policy, which grants the account more, not less.
                guard (try? Policy(json: Array(policy.utf8), kind: .resource)) != nil else {
                    throw KMSError(.internalError, "retiring \(arn) in the policy of \(key.record.arn) would leave it unreadable")
                }
                let updated = key.with { $0.policy = policy }
                state.keys[keyID] = updated
                changes.append(.putKey(updated.record))
            }
            for (roleARN, role) in state.identities {
                guard let trust = role.record.trustPolicy, let retired = PrincipalRetirement.retiring(arn, as: uniqueID, in: trust) else { continue }
                var updated = role.record
                updated.trustPolicy = retired
                state.identities[roleARN] = LiveIdentity(record: updated)
                changes.append(.putIdentity(updated))
            }
            return ((), changes)
        }
    }

    /// GetUser or GetRole (GetUser without a name: the calling user).
    public func getIdentity(_ kind: IdentityRecord.Kind, name: String, caller: Caller) throws -> IdentityRecord {
        let arn = IdentityRecord.arn(kind, account: caller.account, name: name)
        return try iamRead(kind == .user ? .iamGetUser : .iamGetRole, arn, caller) { state in
            try Self.identity(kind, name, caller.account, in: state).record
        }
    }

    /// ListUsers or ListRoles of the caller's account, by name.
    public func listIdentities(_ kind: IdentityRecord.Kind, caller: Caller) throws -> [IdentityRecord] {
        try iamRead(kind == .user ? .iamListUsers : .iamListRoles, "arn:aws:iam::\(caller.account):\(kind.rawValue)/*", caller) { state in
            state.identities.values.map(\.record).filter { $0.kind == kind && $0.account == caller.account }.sorted { $0.name < $1.name }
        }
    }

    /// PutUserPolicy or PutRolePolicy: adds or replaces an inline identity policy.
    public func putIdentityPolicy(_ kind: IdentityRecord.Kind, name: String, policyName: String, document: String, caller: Caller) throws {
        let arn = IdentityRecord.arn(kind, account: caller.account, name: name)
        try iamChange(kind == .user ? .iamPutUserPolicy : .iamPutRolePolicy, arn, caller) { _, state in
            try Validate.iamName(policyName, "policy name", 128)
            var record = try Self.identity(kind, name, caller.account, in: state).record
            try Self.parseIAMPolicy(document, kind: .identity)
            record.policies[policyName] = document
            let total = record.policies.values.reduce(0) { $0 + $1.utf8.filter { !Self.isJSONSpace($0) }.count }
            let limit = kind == .user ? Self.userPolicyBytes : Self.rolePolicyBytes
            guard total <= limit else {
                throw KMSError(.iamLimitExceeded, "Maximum policy size of \(limit) bytes exceeded for \(kind.rawValue) \(name)")
            }
            state.identities[arn] = LiveIdentity(record: record)
            return ((), [.putIdentity(record)])
        }
    }

    /// GetUserPolicy or GetRolePolicy.
    public func getIdentityPolicy(_ kind: IdentityRecord.Kind, name: String, policyName: String, caller: Caller) throws -> String {
        let arn = IdentityRecord.arn(kind, account: caller.account, name: name)
        return try iamRead(kind == .user ? .iamGetUserPolicy : .iamGetRolePolicy, arn, caller) { state in
            guard let document = try Self.identity(kind, name, caller.account, in: state).record.policies[policyName] else {
                throw KMSError(.noSuchEntity, "The \(kind.rawValue) policy with name \(policyName) cannot be found.")
            }
            return document
        }
    }

    /// DeleteUserPolicy or DeleteRolePolicy.
    public func deleteIdentityPolicy(_ kind: IdentityRecord.Kind, name: String, policyName: String, caller: Caller) throws {
        let arn = IdentityRecord.arn(kind, account: caller.account, name: name)
        try iamChange(kind == .user ? .iamDeleteUserPolicy : .iamDeleteRolePolicy, arn, caller) { _, state in
            var record = try Self.identity(kind, name, caller.account, in: state).record
            guard record.policies.removeValue(forKey: policyName) != nil else {
                throw KMSError(.noSuchEntity, "The \(kind.rawValue) policy with name \(policyName) cannot be found.")
            }
            state.identities[arn] = LiveIdentity(record: record)
            return ((), [.putIdentity(record)])
        }
    }

    /// ListUserPolicies or ListRolePolicies: policy names, sorted.
    public func listIdentityPolicies(_ kind: IdentityRecord.Kind, name: String, caller: Caller) throws -> [String] {
        let arn = IdentityRecord.arn(kind, account: caller.account, name: name)
        return try iamRead(kind == .user ? .iamListUserPolicies : .iamListRolePolicies, arn, caller) { state in
            try Self.identity(kind, name, caller.account, in: state).record.policies.keys.sorted()
        }
    }

    /// UpdateAssumeRolePolicy: a role's new trust policy.
    public func updateTrustPolicy(roleName: String, document: String, caller: Caller) throws {
        let arn = IdentityRecord.arn(.role, account: caller.account, name: roleName)
        try iamChange(.iamUpdateAssumeRolePolicy, arn, caller) { _, state in
            var record = try Self.identity(.role, roleName, caller.account, in: state).record
            try Self.checkTrustPolicy(document)
            record.trustPolicy = document
            state.identities[arn] = LiveIdentity(record: record)
            return ((), [.putIdentity(record)])
        }
    }

    static func identity(_ kind: IdentityRecord.Kind, _ name: String, _ account: String, in state: EngineState) throws(KMSError) -> LiveIdentity {
        guard let identity = state.identities[IdentityRecord.arn(kind, account: account, name: name)] else {
            throw KMSError(.noSuchEntity, "The \(kind.rawValue) with name \(name) cannot be found.")
        }
        return identity
    }

    /// A trust policy names principals and allows only sts: actions.
    static func checkTrustPolicy(_ document: String) throws(KMSError) {
        guard document.utf8.count <= trustPolicyBytes else {
            throw KMSError(.iamLimitExceeded, "Cannot exceed quota for ACLSizePerRole: \(trustPolicyBytes)")
        }
        let policy = try parseIAMPolicy(document, kind: .resource)
        for statement in policy.statements {
            guard case let .any(actions) = statement.action, actions.allSatisfy({ $0.lowercased().hasPrefix("sts:") }) else {
                throw KMSError(.malformedIdentityPolicy, "AssumeRole policy may only specify STS AssumeRole actions.")
            }
        }
    }

    /// A policy document given to IAM, refused with IAM's MalformedPolicyDocument and the reason.
    @discardableResult
    static func parseIAMPolicy(_ document: String, kind: Policy.Kind) throws(KMSError) -> Policy {
        do {
            return try Policy(json: Array(document.utf8), kind: kind)
        } catch {
            throw KMSError(.malformedIdentityPolicy, error.reason)
        }
    }

    static func isJSONSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x0a || byte == 0x0d || byte == 0x09 }

    /// 17 characters of IAM's unique-ID alphabet.
    static func randomIAMID() throws -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        return String(try SecureRandom.bytes(count: 17).map { alphabet[Int($0 % 32)] })
    }
}
