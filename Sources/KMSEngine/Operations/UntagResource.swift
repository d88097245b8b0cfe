extension KMSEngine {
    /// UntagResource: removes the tags with these keys (absent ones are ignored, as AWS does).
    public func untagResource(keyID: String, tagKeys: [String], caller: Caller) throws {
        try updateKey(.untagResource, keyID: keyID, extra: tagKeys.isEmpty ? [:] : ["aws:tagkeys": tagKeys], caller: caller) { key in
            try Self.requireNotPendingDeletion(key)
            key.tags.removeAll { tagKeys.contains($0.tagKey) }
        }
    }
}
