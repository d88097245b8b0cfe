import ArgumentParser
import CLinux
import Foundation

/// `kmsfs status MOUNTPOINT`: the mount's metrics (the ones Prometheus scrapes with
/// `-o metrics=`) for a person: requests, key service calls and their latency, caches, failures.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show what a mounted volume is doing: FUSE requests, key service calls, caches, integrity failures.")

    @Argument(help: "The mount point.") var mountPoint: String
    @Flag(help: "Print the metrics as Prometheus's text format instead.") var prometheus = false

    func run() throws {
        var value = [UInt8](repeating: 0, count: 65536)
        let count = getxattr(mountPoint, "user.kmsfs.metrics", &value, value.count)
        guard count >= 0 else {
            throw CommandFailure("kmsfs status: \(mountPoint): \(String(cString: strerror(errno))) (not the root of a kmsfs mount?)")
        }
        let text = String(decoding: value[0..<count], as: UTF8.self)
        if prometheus { return print(text, terminator: "") }
        let samples = Self.parse(text)
        func sum(_ name: String, where predicate: ([String: String]) -> Bool = { _ in true }) -> Double {
            samples.filter { $0.name == name && predicate($0.labels) }.reduce(0) { $0 + $1.value }
        }
        func label(_ name: String, _ key: String) -> [String] {
            Array(Set(samples.filter { $0.name == name }.compactMap { $0.labels[key] })).sorted()
        }
        print("FUSE requests")
        for operation in label("kmsfs_fuse_requests_total", "operation") {
            let ok = sum("kmsfs_fuse_requests_total") { $0["operation"] == operation && $0["outcome"] == "ok" }
            let failed = sum("kmsfs_fuse_requests_total") { $0["operation"] == operation && $0["outcome"] == "error" }
            print("  \(operation.padding(toLength: 14, withPad: " ", startingAt: 0)) \(Int(ok)) ok, \(Int(failed)) failed")
        }
        print("key service calls")
        for operation in label("kmsfs_kms_requests_total", "operation") {
            let calls = sum("kmsfs_kms_requests_total") { $0["operation"] == operation }
            let ok = sum("kmsfs_kms_requests_total") { $0["operation"] == operation && $0["outcome"] == "ok" }
            let seconds = sum("kmsfs_kms_request_duration_seconds_sum") { $0["operation"] == operation }
            let mean = calls > 0 ? seconds / calls * 1000 : 0
            print("  \(operation.padding(toLength: 16, withPad: " ", startingAt: 0)) \(Int(calls)) calls, \(Int(calls - ok)) failed, \(String(format: "%.2f", mean)) ms mean")
        }
        let hits = sum("kmsfs_data_key_cache_hits_total"), misses = sum("kmsfs_data_key_cache_misses_total")
        print("data-key cache: \(Int(hits)) hits, \(Int(misses)) misses, \(Int(sum("kmsfs_data_key_cache_entries"))) keys held")
        if samples.contains(where: { $0.name == "kmsfs_key_pool_ready" }) {
            print("key pool: \(Int(sum("kmsfs_key_pool_ready"))) ready, \(Int(sum("kmsfs_key_pool_served_total"))) served")
        }
        print("plaintext: \(Int(sum("kmsfs_plaintext_bytes_total") { $0["direction"] == "read" })) bytes read, "
              + "\(Int(sum("kmsfs_plaintext_bytes_total") { $0["direction"] == "write" })) bytes written")
        print("integrity failures (EIO): \(Int(sum("kmsfs_integrity_failures_total")))")
    }

    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    /// Prometheus's text format, as kmsfs writes it (no escaped quotes in label values).
    static func parse(_ text: String) -> [Sample] {
        text.split(separator: "\n").compactMap { line in
            guard !line.hasPrefix("#"), let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { return nil }
            let series = line[..<space]
            guard let brace = series.firstIndex(of: "{") else { return Sample(name: String(series), labels: [:], value: value) }
            var labels: [String: String] = [:]
            for pair in series[series.index(after: brace)...].dropLast().split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { labels[String(parts[0])] = String(parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))) }
            }
            return Sample(name: String(series[..<brace]), labels: labels, value: value)
        }
    }
}
