extension KMSEngine {
    /// Deletes every key (with its material, aliases and grants) and custom key store of every
    /// account, keeping accounts, identities and access keys: the dev server's answer to a test
    /// suite's reset between tests (moto's `POST /moto-api/reset`). Audited as one `Reset`. Keys
    /// made in a connected token are destroyed there too.
    public func removeAllKeys() throws {
        try manage("Reset", Self.adminCaller) { record, state in
            let ids = Array(state.keys.identities)
            for key in state.keys.values where key.record.xksKeyID == nil {
                if let store = key.record.customKeyStoreID { try? keyStoreConnections.connection(store)?.deleteKey(label: key.record.keyID) }
            }
            let stores = Array(state.customKeyStores.keys)
            for store in stores { keyStoreConnections.set(store, nil) }
            record.note = "\(ids.count) keys and \(stores.count) custom key stores removed (dev server reset)"
            state.keys = KeyTable()
            state.grants = [:]
            state.aliases = [:]
            state.customKeyStores = [:]
            return ((), ids.map { .deleteKey($0) } + stores.map { .deleteCustomKeyStore(id: $0) })
        }
    }
}
