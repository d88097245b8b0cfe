import Foundation
import Synchronization

/// Progress of a long operator command on standard error: a bar with rate and time left,
/// redrawn in place, on a terminal; otherwise (a log, a pipe, systemd) a plain line every few
/// seconds, which a log keeps readable.
final class ProgressLine: Sendable {
    private let label: String
    private let unit: String
    private let total: Int
    private let started = Date()
    private let interactive = isatty(2) == 1
    private let state = Mutex<(done: Int, lastShown: Date)>((0, .distantPast))

    init(_ label: String, total: Int, unit: String = "files") {
        self.label = label
        self.total = total
        self.unit = unit
    }

    /// Counts one more item done, and shows it if it is time to.
    func advance() {
        let now = Date()
        let shown: Int? = state.withLock { state in
            state.done += 1
            let interval: TimeInterval = interactive ? 0.1 : 5
            guard now.timeIntervalSince(state.lastShown) >= interval || state.done == total else { return nil }
            state.lastShown = now
            return state.done
        }
        if let shown { show(shown, at: now) }
    }

    /// Ends the interactive line.
    func finish() {
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    private func show(_ done: Int, at now: Date) {
        let elapsed = max(now.timeIntervalSince(started), 0.001)
        let rate = Double(done) / elapsed
        let left = rate > 0 ? Double(total - done) / rate : 0
        let figures = "\(done)/\(total) \(unit), \(Int(rate.rounded()))/s, \(Self.duration(left)) left"
        if interactive {
            let width = 30
            let filled = total > 0 ? width * done / total : width
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            FileHandle.standardError.write(Data("\r\(label) [\(bar)] \(figures)\u{1b}[K".utf8))
        } else {
            FileHandle.standardError.write(Data("\(label): \(figures)\n".utf8))
        }
    }

    static func duration(_ seconds: Double) -> String {
        let whole = Int(seconds.rounded())
        return whole >= 3600 ? String(format: "%d:%02d:%02d", whole / 3600, whole / 60 % 60, whole % 60)
                             : String(format: "%d:%02d", whole / 60, whole % 60)
    }
}
