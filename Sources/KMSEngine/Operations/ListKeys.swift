public struct KeyListEntry: Sendable, Equatable {
    public var keyId: String
    public var keyArn: String
}

public struct ListKeysResponse: Sendable {
    public var keys: [KeyListEntry]
    public var nextMarker: String?
    public var truncated: Bool
}

extension KMSEngine {
    /// ListKeys: every key of the caller's account and region (pending deletion included), by key
    /// ID, `limit` (1–1000, default 100) at a time.
    public func listKeys(limit: Int? = nil, marker: String? = nil, caller: Caller) throws -> ListKeysResponse {
        try perform(.listKeys, caller) { record, state in
            try authorizeAccount(.listKeys, caller, in: state, record: &record)
            let keys = state.keys.values.map(\.record)
                .filter { $0.account == caller.account && $0.region == caller.region }
                .sorted { $0.keyID < $1.keyID }
            let (page, next) = try Paging.page(keys, key: \.keyID, limit: limit, marker: marker)
            return ListKeysResponse(keys: page.map { KeyListEntry(keyId: $0.keyID, keyArn: $0.arn) },
                                    nextMarker: next, truncated: next != nil)
        }
    }
}
