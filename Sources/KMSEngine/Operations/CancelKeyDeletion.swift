extension KMSEngine {
    /// CancelKeyDeletion: PendingDeletion → Disabled (as AWS: the key must be enabled again).
    /// Returns the key ARN.
    public func cancelKeyDeletion(keyID: String, caller: Caller) throws -> String {
        try updateKey(.cancelKeyDeletion, keyID: keyID, caller: caller) { key in
            guard key.state == .pendingDeletion || key.state == .pendingReplicaDeletion else {
                throw KMSError(.invalidState, "\(key.arn) is not pending deletion.")
            }
            key.state = key.versions.isEmpty ? .pendingImport : .disabled
            key.deletionDate = nil
            key.pendingWindowInDays = nil
            return key.arn
        }
    }
}
