import CoreMetrics
import class Prometheus.PrometheusCollectorRegistry
import struct Prometheus.PrometheusMetricsFactory

/// The process's Prometheus registry, with swift-metrics bootstrapped onto it the first time it
/// is used: the libraries record through swift-metrics (CoreMetrics), and whatever serves
/// `/metrics` (a mount, kmsd) renders this registry. Metrics bind to the backend when they are
/// made, so ``start()`` comes before the first of them.
public enum MetricsBackend {
    public static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()

    public static func start() { _ = registry }

    /// A gauge's (or counter's) lines in the text format, for values read when scraped.
    public static func line(_ name: String, _ help: String, _ value: Int, type: String = "gauge", labels: [(String, String)] = []) -> String {
        let labelText = labels.isEmpty ? "" : "{" + labels.map { "\($0.0)=\"\($0.1)\"" }.joined(separator: ",") + "}"
        return "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name)\(labelText) \(value)\n"
    }
}
