extension KMSEngine {
    /// EnableKey: Disabled → Enabled (Enabled stays Enabled); other states are KMSInvalidStateException.
    public func enableKey(keyID: String, caller: Caller) throws {
        try setState(.enabled, action: .enableKey, keyID: keyID, caller: caller)
    }

    /// Moves a key between Enabled and Disabled; only those two states may move.
    func setState(_ state: KeyState, action: KMSAction, keyID: String, caller: Caller) throws {
        try updateKey(action, keyID: keyID, caller: caller) { key in
            guard key.state == .enabled || key.state == .disabled else {
                throw KMSError(.invalidState, "\(key.arn) is \(key.state.rawValue); \(action.operation) is not allowed in that state.")
            }
            key.state = state
        }
    }
}
