extension KMSEngine {
    /// UpdateKeyDescription (0–8192 characters).
    public func updateKeyDescription(keyID: String, description: String, caller: Caller) throws {
        try updateKey(.updateKeyDescription, keyID: keyID, caller: caller) { key in
            try Validate.length(description, "description", 0...8192)
            try Self.requireNotPendingDeletion(key)
            key.description = description
        }
    }
}
