import KMSFSCrypto

extension KMSEngine {
    /// GenerateRandom: 1–1024 random bytes (no key involved) — from the token of a connected
    /// AWS_CLOUDHSM custom key store when one is named, as AWS draws them from the cluster.
    public func generateRandom(numberOfBytes: Int, customKeyStoreID: String? = nil, caller: Caller) throws -> SecretBytes {
        try perform(.generateRandom, caller) { record, state in
            try authorizeAccount(.generateRandom, caller, in: state, record: &record)
            try Validate.range(numberOfBytes, "numberOfBytes", 1...1024)
            guard let id = customKeyStoreID else { return try SecretBytes.random(count: numberOfBytes) }
            let (store, _) = try customKeyStore(id, caller, in: state)
            guard store.type == .awsCloudHSM else {
                throw KMSError(.unsupportedOperation, "GenerateRandom does not draw from an EXTERNAL_KEY_STORE custom key store")
            }
            guard let connection = keyStoreConnections.connection(id) else {
                throw KMSError(.customKeyStoreInvalidState, "Custom key store \(id) is \(connectionState(store).rawValue), not CONNECTED")
            }
            do {
                return try connection.random(count: numberOfBytes)
            } catch {
                throw KMSError(.customKeyStoreInvalidState, "Custom key store \(id) could not generate random bytes: \(error)")
            }
        }
    }
}
