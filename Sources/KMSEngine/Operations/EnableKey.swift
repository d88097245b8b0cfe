extension KMSEngine {
    /// EnableKey: Disabled → Enabled (Enabled stays Enabled); other states are KMSInvalidStateException.
    public func enableKey(keyID: String, caller: Caller) throws {
        try updateKey("EnableKey", keyID: keyID, caller: caller) { key in
            guard key.state == .enabled || key.state == .disabled else {
                throw KMSError(.invalidState, "\(key.arn) is \(key.state.rawValue) and cannot be enabled.")
            }
            key.state = .enabled
        }
    }
}
