/// Custom key stores and multi-Region keys are not served yet (docs/KMS.md). Their operations
/// still answer as AWS would for a service where none exist — after authorization, like every
/// operation: DescribeCustomKeyStores lists none, one named by ID is not found, creating one or
/// replicating a key is unsupported — rather than "unknown operation".
extension KMSEngine {
    public func createCustomKeyStore(caller: Caller) throws -> Never {
        try perform(.createCustomKeyStore, caller) { record, state in
            try authorizeAccount(.createCustomKeyStore, caller, in: state, record: &record)
            throw KMSError(.unsupportedOperation, "Custom key stores (CloudHSM or external key stores) are not supported by this key service yet")
        }
    }

    /// DescribeCustomKeyStores: none exist, so a store asked for by ID or name is not found.
    public func describeCustomKeyStores(id: String?, name: String?, caller: Caller) throws {
        try perform(.describeCustomKeyStores, caller) { record, state in
            try authorizeAccount(.describeCustomKeyStores, caller, in: state, record: &record)
            if let wanted = id ?? name {
                throw KMSError(.customKeyStoreNotFound, "Custom key store \(wanted) does not exist")
            }
        }
    }

    /// Connect, Disconnect, Update or Delete a custom key store: none exist.
    public func manageCustomKeyStore(_ operation: KMSOperation, id: String, caller: Caller) throws -> Never {
        let action = KMSAction(rawValue: "kms:" + operation.rawValue)!
        return try perform(operation, caller) { record, state in
            try authorizeAccount(action, caller, in: state, record: &record)
            throw KMSError(.customKeyStoreNotFound, "Custom key store \(id) does not exist")
        }
    }

    /// ReplicateKey or UpdatePrimaryRegion: every key here is a single-Region key.
    public func multiRegionChange(_ operation: KMSOperation, keyID: String, caller: Caller) throws -> Never {
        let action = KMSAction(rawValue: "kms:" + operation.rawValue)!
        return try perform(operation, caller) { record, state in
            let key = try managedKey(keyID, action: action, for: caller, in: state, record: &record)
            throw KMSError(.unsupportedOperation, "\(key.record.arn) is not a multi-Region key (multi-Region keys are not supported by this key service yet)")
        }
    }
}
