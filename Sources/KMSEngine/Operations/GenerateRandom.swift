import KMSFSCrypto

extension KMSEngine {
    /// GenerateRandom: 1–1024 random bytes (no key involved).
    public func generateRandom(numberOfBytes: Int, caller: Caller) throws -> SecretBytes {
        try perform(.generateRandom, caller) { record, state in
            try authorizeAccount(.generateRandom, caller, in: state, record: &record)
            try Validate.range(numberOfBytes, "numberOfBytes", 1...1024)
            return try SecretBytes.random(count: numberOfBytes)
        }
    }
}
