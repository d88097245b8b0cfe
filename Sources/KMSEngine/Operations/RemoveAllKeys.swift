extension KMSEngine {
    /// Deletes every key (with its material, aliases and grants) of every account, keeping
    /// accounts, identities and access keys: the dev server's answer to a test suite's reset
    /// between tests (moto's `POST /moto-api/reset`). Audited as one `Reset`.
    public func removeAllKeys() throws {
        try manage("Reset", Self.adminCaller) { record, state in
            let ids = Array(state.keys.keys)
            record.note = "\(ids.count) keys removed (dev server reset)"
            state.keys = [:]
            state.grants = [:]
            state.aliases = [:]
            return ((), ids.map { .deleteKey(keyID: $0) })
        }
    }
}
