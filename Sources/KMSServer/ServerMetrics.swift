import CoreMetrics
import Dispatch
import KMSWire
import Synchronization

/// What kmsd's transport measures, through swift-metrics: KMS requests by operation and outcome
/// (ok, throttled, client_error, server_error) and their duration. An operation name comes from
/// the request, so only the names kmsd serves are labels; anything else is "unknown" (a client
/// must not be able to make a label per request).
enum ServerMetrics {
    private static let counters = Mutex<[String: CoreMetrics.Counter]>([:])
    private static let timers = Mutex<[String: CoreMetrics.Timer]>([:])
    private static let served = Set(KMSProtocol.operationNames)

    static func record(operation: String, response: KMSProtocol.Response, nanoseconds: UInt64) {
        let name = served.contains(operation) ? operation : "unknown"
        let outcome = response.status == 200 ? "ok" : response.errorType == "ThrottlingException" ? "throttled"
            : response.status >= 500 ? "server_error" : "client_error"
        let counter = counters.withLock { counters in
            let key = name + " " + outcome
            if let counter = counters[key] { return counter }
            let counter = CoreMetrics.Counter(label: "kmsd_requests_total", dimensions: [("operation", name), ("outcome", outcome)])
            counters[key] = counter
            return counter
        }
        counter.increment()
        let timer = timers.withLock { timers in
            if let timer = timers[name] { return timer }
            let timer = CoreMetrics.Timer(label: "kmsd_request_duration_seconds", dimensions: [("operation", name)], preferredDisplayUnit: .seconds)
            timers[name] = timer
            return timer
        }
        timer.recordNanoseconds(Int64(min(nanoseconds, UInt64(Int64.max))))
    }
}
