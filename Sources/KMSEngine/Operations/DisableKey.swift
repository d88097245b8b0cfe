extension KMSEngine {
    /// DisableKey: Enabled → Disabled (Disabled stays Disabled); other states are KMSInvalidStateException.
    public func disableKey(keyID: String, caller: Caller) throws {
        try updateKey("DisableKey", keyID: keyID, caller: caller) { key in
            guard key.state == .enabled || key.state == .disabled else {
                throw KMSError(.invalidState, "\(key.arn) is \(key.state.rawValue) and cannot be disabled.")
            }
            key.state = .disabled
        }
    }
}
