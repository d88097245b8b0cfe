import Foundation

public struct AliasListEntry: Sendable, Equatable {
    public var aliasName: String
    public var aliasArn: String
    public var targetKeyId: String?
    public var creationDate: Date
    public var lastUpdatedDate: Date
}

public struct ListAliasesResponse: Sendable {
    public var aliases: [AliasListEntry]
    public var nextMarker: String?
    public var truncated: Bool
}

extension KMSEngine {
    /// ListAliases: the aliases of the caller's account and region, or only those of one key.
    public func listAliases(keyID: String? = nil, limit: Int? = nil, marker: String? = nil, caller: Caller) throws -> ListAliasesResponse {
        try perform(.listAliases, caller) { record, state in
            // Account-level, as AWS: with a KeyId, still kms:ListAliases on the account, not the key.
            try authorizeAccount(.listAliases, caller, in: state, record: &record)
            var target: String?
            if let keyID {
                // Another account's key is refused in the same words whether it exists or not.
                let key = try resolve(keyID, for: caller, allowAlias: false, action: .listAliases, in: state)
                guard key.record.account == caller.account else { throw Self.foreignKeyDenied(caller, key.record.arn, .listAliases) }
                record.keyARN = key.record.arn
                target = key.record.keyID
            }
            let aliases = state.aliases.values
                .filter { $0.account == caller.account && $0.region == caller.region && (target == nil || $0.targetKeyID == target) }
                .sorted { $0.aliasName < $1.aliasName }
            let (page, next) = try Paging.page(aliases, key: \.aliasName, limit: limit, marker: marker)
            return ListAliasesResponse(
                aliases: page.map { AliasListEntry(aliasName: $0.aliasName, aliasArn: $0.arn, targetKeyId: $0.targetKeyID,
                                                   creationDate: $0.creationDate, lastUpdatedDate: $0.lastUpdatedDate) },
                nextMarker: next, truncated: next != nil)
        }
    }
}
