import Synchronization

/// The live side of custom key stores: each store's connection and connection state. Not
/// persisted (a restart reconnects the stores whose owner left them connected); read by every
/// cryptographic call on a key in a custom key store, changed by Connect and Disconnect.
final class CustomKeyStoreConnections: Sendable {
    struct Entry: Sendable {
        var connection: (any CustomKeyStoreConnection)?
        var state: ConnectionState
        var errorCode: String?
        /// Which connection attempt a CONNECTING entry is for.
        var attempt = 0
    }

    private let entries = Mutex<[String: Entry]>([:])
    private let attempts = Atomic<Int>(0)
    /// Whether any store is connected: the server then runs cryptographic calls off its event
    /// loop, since they may wait for a token or a proxy.
    let anyConnected = Atomic<Bool>(false)

    func entry(_ id: String) -> Entry? { entries.withLock { $0[id] } }

    func connection(_ id: String) -> (any CustomKeyStoreConnection)? {
        entries.withLock { $0[id]?.state == .connected ? $0[id]?.connection : nil }
    }

    /// Marks the store CONNECTING unless it is connected, connecting, failed or disconnecting;
    /// returns the attempt's number, nil if it was not marked (the caller then does not connect).
    func beginConnecting(_ id: String) -> Int? {
        entries.withLock { entries in
            switch entries[id]?.state ?? .disconnected {
            case .disconnected:
                let attempt = attempts.add(1, ordering: .relaxed).newValue
                entries[id] = Entry(connection: nil, state: .connecting, attempt: attempt)
                return attempt
            default:
                return nil
            }
        }
    }

    /// Ends connection attempt `attempt` with its outcome, unless a Disconnect (or a delete, or a
    /// later attempt after a Disconnect and an Update) came first: then the new connection is
    /// closed. Returns whether the outcome was recorded as connected.
    @discardableResult
    func finishConnecting(_ id: String, attempt: Int, _ entry: Entry) -> Bool {
        let stale: Bool = entries.withLock { entries in
            guard entries[id]?.state == .connecting, entries[id]?.attempt == attempt else { return true }
            entries[id] = entry
            anyConnected.store(entries.values.contains { $0.state == .connected }, ordering: .releasing)
            return false
        }
        if stale { entry.connection?.close() }
        return !stale && entry.state == .connected
    }

    func set(_ id: String, _ entry: Entry?) {
        let previous: Entry? = entries.withLock { entries in
            let previous = entries[id]
            entries[id] = entry
            anyConnected.store(entries.values.contains { $0.state == .connected }, ordering: .releasing)
            return previous
        }
        if let old = previous?.connection, entry?.connection == nil || (entry?.connection as AnyObject?) !== (old as AnyObject) {
            old.close()
        }
    }

    func closeAll() {
        let all = entries.withLock { entries in defer { entries = [:] }; return entries }
        anyConnected.store(false, ordering: .releasing)
        for entry in all.values { entry.connection?.close() }
    }
}
