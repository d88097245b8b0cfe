import CoreMetrics
import KMSClient
import KMSMetrics
import Synchronization

/// What a mount measures, in Prometheus's text format: FUSE requests by operation and outcome,
/// plaintext bytes through the mount, integrity failures (EIO for bytes that do not
/// authenticate or a key attribute that is not the file's), the KMS calls (``MeteredKMSClient``)
/// and, read when asked, the data-key cache and the key pool. Served on the socket or loopback
/// port named at mount (`-o metrics=`), and through the mount root's `user.kmsfs.metrics`
/// attribute to `kmsfs status`.
enum MountMetrics {
    /// Makes sure the backend is in place before any metric is made (they bind at creation).
    static func start() { MetricsBackend.start() }

    static let plaintextBytesRead = CoreMetrics.Counter(label: "kmsfs_plaintext_bytes_total", dimensions: [("direction", "read")])
    static let plaintextBytesWritten = CoreMetrics.Counter(label: "kmsfs_plaintext_bytes_total", dimensions: [("direction", "write")])
    static let integrityFailures = CoreMetrics.Counter(label: "kmsfs_integrity_failures_total")

    /// One counter per operation and outcome, made once (the factory's lookup is not free).
    private static let requests = Mutex<[String: CoreMetrics.Counter]>([:])

    static func request(_ operation: String, failed: Bool) {
        let key = failed ? operation + " error" : operation
        let counter = requests.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = CoreMetrics.Counter(label: "kmsfs_fuse_requests_total", dimensions: [("operation", operation), ("outcome", failed ? "error" : "ok")])
            counters[key] = counter
            return counter
        }
        counter.increment()
    }

    /// The registry's text, then the gauges read now.
    static func text(cache: DataKeyCache.Statistics?, pool: KeyPool?) -> String {
        var text = MetricsBackend.registry.emitToString()
        func gauge(_ name: String, _ help: String, _ value: Int, type: String = "gauge") {
            text += MetricsBackend.line(name, help, value, type: type)
        }
        if let cache {
            gauge("kmsfs_data_key_cache_hits_total", "Data keys found in the cache.", cache.hits, type: "counter")
            gauge("kmsfs_data_key_cache_misses_total", "Data keys the key service was asked for.", cache.misses, type: "counter")
            gauge("kmsfs_data_key_cache_evictions_total", "Data keys dropped from the cache.", cache.evictions, type: "counter")
            gauge("kmsfs_data_key_cache_entries", "Data keys in the cache now.", cache.entries)
        }
        if let pool {
            let statistics = pool.statistics
            gauge("kmsfs_key_pool_ready", "Pre-generated data keys ready for new files.", statistics.ready)
            gauge("kmsfs_key_pool_served_total", "Data keys the pool handed to new files.", statistics.served, type: "counter")
            gauge("kmsfs_key_pool_served_without_waiting_total", "Data keys handed out without waiting.", statistics.servedWithoutWaiting, type: "counter")
        }
        return text
    }
}
