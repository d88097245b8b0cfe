extension KMSEngine {
    /// TagResource: adds or replaces tags (at most 50 per key; `aws:` keys are reserved).
    public func tagResource(keyID: String, tags: [Tag], caller: Caller) throws {
        try updateKey(.tagResource, keyID: keyID, extra: Self.requestTags(tags), caller: caller) { key in
            try Validate.tags(tags)
            try Self.requireNotPendingDeletion(key)
            var merged = key.tags.filter { old in !tags.contains { $0.tagKey == old.tagKey } }
            merged += tags
            guard merged.count <= KeyRecord.maximumTags else { throw KMSError(.limitExceeded, "A key can have at most \(KeyRecord.maximumTags) tags") }
            key.tags = merged.sorted { $0.tagKey < $1.tagKey }
        }
    }

    /// `aws:RequestTag/<key>` and `aws:TagKeys` for a request carrying tags.
    static func requestTags(_ tags: [Tag]) -> [String: [String]] {
        guard !tags.isEmpty else { return [:] }
        var values = ["aws:tagkeys": tags.map(\.tagKey)]
        for tag in tags { values["aws:requesttag/" + tag.tagKey.lowercased()] = [tag.tagValue] }
        return values
    }
}
