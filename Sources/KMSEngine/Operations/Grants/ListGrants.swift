public struct ListGrantsResponse: Sendable {
    public var grants: [GrantRecord]
    public var nextMarker: String?
    public var truncated: Bool
}

extension KMSEngine {
    /// ListGrants: the grants of a key (key ID or ARN), optionally only one grant ID or one grantee.
    public func listGrants(keyID: String, grantID: String? = nil, granteePrincipal: String? = nil, limit: Int? = nil,
                           marker: String? = nil, caller: Caller) throws -> ListGrantsResponse {
        try perform(.listGrants, caller) { record, state in
            let key = try managedKey(keyID, action: .listGrants, for: caller, in: state, record: &record)
            let grants = (state.grants[key.record.identity] ?? [:]).values
                .filter { (grantID == nil || $0.grantID == grantID) && (granteePrincipal == nil || $0.granteePrincipal == granteePrincipal) }
                .sorted { $0.grantID < $1.grantID }
            let (page, next) = try Paging.page(grants, key: \.grantID, limit: limit, marker: marker)
            return ListGrantsResponse(grants: page, nextMarker: next, truncated: next != nil)
        }
    }

    /// ListRetirableGrants: the grants, on any key, that `retiringPrincipal` may retire.
    public func listRetirableGrants(retiringPrincipal: String, limit: Int? = nil, marker: String? = nil,
                                    caller: Caller) throws -> ListGrantsResponse {
        try perform(.listRetirableGrants, caller) { record, state in
            try Validate.length(retiringPrincipal, "retiringPrincipal", 1...256)
            try authorizeAccount(.listRetirableGrants, caller, in: state, record: &record)
            // As AWS: a principal of the caller's own account (another account's grants are not
            // the caller's to list).
            let parts = retiringPrincipal.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false)
            guard parts.count == 6, parts[4] == caller.account else {
                throw KMSError(.accessDenied, "User: \(caller.principal) is not authorized to perform: kms:ListRetirableGrants for a principal of another account")
            }
            let grants = state.grants.values.flatMap(\.values).filter { $0.retiringPrincipal == retiringPrincipal }
                .sorted { $0.grantID < $1.grantID }
            let (page, next) = try Paging.page(grants, key: \.grantID, limit: limit, marker: marker)
            return ListGrantsResponse(grants: page, nextMarker: next, truncated: next != nil)
        }
    }
}
