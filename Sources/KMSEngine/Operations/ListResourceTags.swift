public struct ListResourceTagsResponse: Sendable {
    public var tags: [Tag]
    public var nextMarker: String?
    public var truncated: Bool
}

extension KMSEngine {
    /// ListResourceTags: a key's tags by tag key, `limit` (1–1000) at a time.
    public func listResourceTags(keyID: String, limit: Int? = nil, marker: String? = nil, caller: Caller) throws -> ListResourceTagsResponse {
        try perform(.listResourceTags, caller) { record, state in
            let key = try managedKey(keyID, action: .listResourceTags, for: caller, in: state, record: &record)
            let tags = key.record.tags.sorted { $0.tagKey < $1.tagKey }
            let (page, next) = try Paging.page(tags, key: \.tagKey, limit: limit, marker: marker)
            return ListResourceTagsResponse(tags: page, nextMarker: next, truncated: next != nil)
        }
    }
}
