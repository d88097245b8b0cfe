extension KMSEngine {
    /// DisableKey: Enabled → Disabled (Disabled stays Disabled); other states are KMSInvalidStateException.
    public func disableKey(keyID: String, caller: Caller) throws {
        try setState(.disabled, action: .disableKey, keyID: keyID, caller: caller)
    }
}
