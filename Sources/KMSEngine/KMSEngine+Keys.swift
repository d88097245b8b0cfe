import Foundation

extension KMSEngine {
    /// The actions a caller may take on an AWS-managed key, and only through its service.
    static let serviceUsableActions: Set<String> = [
        "Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
    ]
    /// Actions anyone in the account may take on an AWS-managed key.
    static let readActions: Set<String> = [
        "DescribeKey", "GetKeyRotationStatus", "ListResourceTags", "ListKeyRotations", "GetKeyPolicy", "ListAliases",
    ]

    /// Finds the key `keyID` names for `caller`: a key ID or key ARN, or (when `allowAlias`) an
    /// alias name or alias ARN, in the caller's account and region.
    func resolve(_ keyID: String, for caller: Caller, allowAlias: Bool, in state: EngineState) throws(KMSError) -> LiveKey {
        let reference = try KeyReference(parsing: keyID)
        if reference.isAlias && !allowAlias {
            throw KMSError(.notFound, "Invalid keyId \(keyID): this operation takes a key ID or key ARN, not an alias")
        }
        let id: String
        switch reference {
        case let .keyID(value):
            id = value
        case let .keyARN(account, region, value):
            guard account == caller.account else {
                throw KMSError(.accessDenied, "\(caller.principal) is not authorized to use keys of account \(account)")
            }
            guard region == caller.region else { throw KMSError(.notFound, "Key '\(keyID)' does not exist") }
            id = value
        case let .aliasName(name):
            id = try aliasTarget(name, account: caller.account, region: caller.region, in: state)
        case let .aliasARN(account, region, name):
            guard account == caller.account else {
                throw KMSError(.accessDenied, "\(caller.principal) is not authorized to use keys of account \(account)")
            }
            guard region == caller.region else { throw KMSError(.notFound, "Alias \(keyID) is not found.") }
            id = try aliasTarget(name, account: account, region: region, in: state)
        }
        guard let key = state.keys[id], key.record.account == caller.account, key.record.region == caller.region else {
            throw KMSError(.notFound, "Key '\(ARN.key(id, account: caller.account, region: caller.region))' does not exist")
        }
        return key
    }

    private func aliasTarget(_ name: String, account: String, region: String, in state: EngineState) throws(KMSError) -> String {
        guard let target = state.aliases[.init(account: account, region: region, name: name)]?.targetKeyID else {
            throw KMSError(.notFound, "Alias \(ARN.alias(name, account: account, region: region)) is not found.")
        }
        return target
    }

    /// The one authorization decision point. Today: principals of the key's account may do
    /// everything to customer-managed keys; AWS-managed keys may be read by them and used only
    /// through their service. Key policies and grants will be evaluated here.
    func authorize(_ action: String, _ caller: Caller, _ key: KeyRecord) throws(KMSError) {
        guard key.manager == .aws, !Self.readActions.contains(action) else { return }
        if Self.serviceUsableActions.contains(action), let service = key.service, caller.viaService == service { return }
        throw KMSError(.accessDenied, "\(caller.principal) is not authorized to perform kms:\(action) on \(key.arn): it is an AWS managed key")
    }

    /// The key a cryptographic call may use: resolved (aliases allowed), authorized, and in a
    /// usable state.
    func usableKey(_ keyID: String, action: String, for caller: Caller, in state: EngineState,
                   record: inout AuditRecord) throws(KMSError) -> LiveKey {
        let key = try authorizedKey(keyID, action: action, allowAlias: true, for: caller, in: state, record: &record)
        try requireUsable(key.record, record: &record)
        return key
    }

    /// Key states as AWS enforces them for use: Disabled → DisabledException; PendingDeletion,
    /// PendingImport and the rest → KMSInvalidStateException.
    func requireUsable(_ key: KeyRecord, record: inout AuditRecord) throws(KMSError) {
        switch key.state {
        case .enabled:
            return
        case .disabled:
            throw KMSError(.disabled, "\(key.arn) is disabled.")
        case .pendingDeletion:
            record.note = "use of a key pending deletion"
            pendingDeletionAlarm.raise(keyARN: key.arn, record: record)
            throw KMSError(.invalidState, "\(key.arn) is pending deletion.")
        default:
            throw KMSError(.invalidState, "\(key.arn) is \(key.state.rawValue).")
        }
    }

    /// For management calls: the key, resolved without aliases, authorized for `action`.
    func managedKey(_ keyID: String, action: String, for caller: Caller, in state: EngineState,
                    record: inout AuditRecord) throws(KMSError) -> LiveKey {
        try authorizedKey(keyID, action: action, allowAlias: false, for: caller, in: state, record: &record)
    }

    /// Resolves `keyID`, names the key in the audit record, and asks ``authorize(_:_:_:)``.
    private func authorizedKey(_ keyID: String, action: String, allowAlias: Bool, for caller: Caller,
                               in state: EngineState, record: inout AuditRecord) throws(KMSError) -> LiveKey {
        let key = try resolve(keyID, for: caller, allowAlias: allowAlias, in: state)
        record.keyARN = key.record.arn
        try authorize(action, caller, key.record)
        return key
    }
}
