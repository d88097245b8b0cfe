/// Multi-Region keys are not served yet (docs/KMS.md). Their operations still answer as AWS would
/// for a service where every key is single-Region — after authorization, like every operation —
/// rather than "unknown operation".
extension KMSEngine {
    /// ReplicateKey or UpdatePrimaryRegion: every key here is a single-Region key.
    public func multiRegionChange(_ operation: KMSOperation, keyID: String, caller: Caller) throws -> Never {
        let action = KMSAction(rawValue: "kms:" + operation.rawValue)!
        return try perform(operation, caller) { record, state in
            let key = try managedKey(keyID, action: action, for: caller, in: state, record: &record)
            throw KMSError(.unsupportedOperation, "\(key.record.arn) is not a multi-Region key (multi-Region keys are not supported by this key service yet)")
        }
    }
}
