extension KMSEngine {
    /// GetKeyPolicy: the stored policy (only `default` exists). Stored and returned; evaluating
    /// policies comes with the authorization issue.
    public func getKeyPolicy(keyID: String, policyName: String = "default", caller: Caller) throws -> String {
        try perform("GetKeyPolicy", caller) { record, state in
            guard policyName == "default" else { throw KMSError(.notFound, "No such policy: \(policyName)") }
            return try managedKey(keyID, action: "GetKeyPolicy", for: caller, in: state, record: &record).record.policy
        }
    }
}
