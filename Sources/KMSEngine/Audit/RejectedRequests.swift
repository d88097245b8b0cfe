import Foundation
import Synchronization

/// Keeps refused, unauthenticated requests from filling the audit trail: whatever they claim
/// (operation, access key, region) is cut to a sane length, and at most `burst` of them are
/// recorded at once, then `perSecond`; the records that were dropped are counted in the next
/// one that is written. Anyone who can reach the port can send such requests, so neither their
/// size nor their number may decide how much kmsd writes.
final class RejectedRequests: Sendable {
    let burst: Double
    let perSecond: Double
    private let state: Mutex<(tokens: Double, last: Date?, dropped: Int)>

    init(burst: Double = 100, perSecond: Double = 10) {
        self.burst = burst
        self.perSecond = perSecond
        state = Mutex((burst, nil, 0))
    }

    /// Whether a refused request at `now` is recorded, and how many were dropped before it.
    func admit(at now: Date) -> (recorded: Bool, droppedBefore: Int) {
        state.withLock { state in
            if let last = state.last {
                state.tokens = min(burst, state.tokens + max(0, now.timeIntervalSince(last)) * perSecond)
            }
            state.last = now
            guard state.tokens >= 1 else {
                state.dropped += 1
                return (false, 0)
            }
            state.tokens -= 1
            defer { state.dropped = 0 }
            return (true, state.dropped)
        }
    }

    /// A claimed field as it may be recorded: printable ASCII, at most `limit` characters.
    static func capped(_ text: String, limit: Int) -> String {
        let clean = String(String.UnicodeScalarView(text.unicodeScalars.lazy.filter { $0.value >= 0x20 && $0.value < 0x7f }.prefix(limit)))
        return text.unicodeScalars.count > limit ? clean + "…" : clean
    }
}
