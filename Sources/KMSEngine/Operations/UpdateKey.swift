extension KMSEngine {
    /// The shape of most management calls: resolve a key (no aliases), authorize, let `change`
    /// edit its record, persist the record. Returns what `change` returns.
    func updateKey<R>(_ action: KMSAction, keyID: String, extra: [String: [String]] = [:], caller: Caller,
                      _ change: (inout KeyRecord) throws -> R) throws -> R {
        try manage(action.operation, caller) { record, state in
            let key = try managedKey(keyID, action: action, extra: extra, for: caller, in: state, record: &record)
            var updated = key.record
            let result = try change(&updated)
            let live = key.with { $0 = updated }
            state.keys[updated.identity] = live
            // A multi-Region primary's shared settings (rotation) go to its replicas with it.
            return (result, [.putKey(updated)] + (try propagateShared(from: live, in: &state)))
        }
    }

    /// Refuses changes to a key that is pending deletion, as AWS does.
    static func requireNotPendingDeletion(_ key: KeyRecord) throws(KMSError) {
        if key.state == .pendingDeletion || key.state == .pendingReplicaDeletion {
            throw KMSError(.invalidState, "\(key.arn) is pending deletion.")
        }
    }
}
