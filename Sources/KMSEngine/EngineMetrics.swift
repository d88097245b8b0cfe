import CoreMetrics
import Dispatch
import Synchronization

/// What the engine measures, through swift-metrics (kmsd serves it as Prometheus text): the
/// store's transactions (duration, failures), throttled requests by quota class, and messages to
/// peer deployments (the replication of multi-Region keys: what is delivered, what waits). Each
/// metric is made once, on first use (the factory's lookup is not free).
enum EngineMetrics {
    private static let throttledByClass = Mutex<[RequestQuotas.Class: CoreMetrics.Counter]>([:])
    static let storeTransactions = CoreMetrics.Timer(label: "kmsd_store_transaction_seconds", preferredDisplayUnit: .seconds)
    static let storeErrors = CoreMetrics.Counter(label: "kmsd_store_errors_total")
    private static let peerDelivered = CoreMetrics.Counter(label: "kmsd_peer_messages_total", dimensions: [("outcome", "delivered")])
    private static let peerFailed = CoreMetrics.Counter(label: "kmsd_peer_messages_total", dimensions: [("outcome", "failed")])
    /// Messages still owed to peers after the last round (the replication backlog).
    static let peerBacklog = CoreMetrics.Gauge(label: "kmsd_peer_backlog")

    static func peerMessage(delivered: Bool) { (delivered ? peerDelivered : peerFailed).increment() }

    static func throttled(_ kind: RequestQuotas.Class) {
        let counter = throttledByClass.withLock { counters in
            if let counter = counters[kind] { return counter }
            let counter = CoreMetrics.Counter(label: "kmsd_throttled_requests_total", dimensions: [("class", kind.rawValue)])
            counters[kind] = counter
            return counter
        }
        counter.increment()
    }

    /// Runs a store transaction, timing it and counting its failure.
    static func storeTransaction<R>(_ body: () throws -> R) throws -> R {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { storeTransactions.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start)) }
        do { return try body() } catch {
            storeErrors.increment()
            throw error
        }
    }
}
