import Dispatch
import Foundation

extension KMSEngine {
    /// Runs ``runScheduledTasks()`` every `interval` on a private queue until the engine is released.
    /// A failed run (the store unavailable) is retried at the next tick.
    func startScheduler(every interval: Duration) -> DispatchSourceTimer {
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "kmsd.scheduler"))
        let milliseconds = Int(interval.components.seconds * 1000 + interval.components.attoseconds / 1_000_000_000_000_000)
        timer.schedule(deadline: .now() + .milliseconds(milliseconds), repeating: .milliseconds(max(1, milliseconds)))
        timer.setEventHandler { [weak self] in _ = try? self?.runScheduledTasks() }
        timer.resume()
        return timer
    }

    /// Carries out what is due at the clock's current time: automatic rotations of enabled keys,
    /// and the destruction of keys whose deletion date has passed (record, material and aliases;
    /// irrecoverable). Returns how many of each. The daemon calls it periodically; tests call it
    /// after moving a ``ManualClock``.
    @discardableResult
    public func runScheduledTasks() throws -> (rotated: Int, deleted: Int) {
        let now = clock.now()
        let due = state.withLock { state in
            state.keys.values.map(\.record).filter { key in
                (key.state == .pendingDeletion && (key.deletionDate ?? .distantFuture) <= now)
                    || (key.state == .enabled && key.rotationEnabled && (key.nextRotationDate ?? .distantFuture) <= now)
            }
        }
        var rotations = 0, deletions = 0
        let service = Caller(account: "", region: "", principal: "kms.amazonaws.com", requestID: "scheduler")
        for key in due {
            let caller = Caller(account: key.account, region: key.region, principal: service.principal, requestID: service.requestID)
            if key.state == .pendingDeletion {
                try manage("DeleteKey", caller) { record, state in
                    record.keyARN = key.arn
                    state.keys[key.keyID] = nil
                    state.aliases = state.aliases.filter { $0.value.targetKeyID != key.keyID }
                    return ((), [.deleteKey(keyID: key.keyID)])
                }
                deletions += 1
            } else {
                try manage("RotateKey", caller) { record, state in
                    guard let live = state.keys[key.keyID] else { return ((), []) }
                    record.keyARN = key.arn
                    var (next, changes) = try rotated(live, type: .automatic)
                    next = next.with { $0.nextRotationDate = now.addingTimeInterval(Double($0.rotationPeriodInDays ?? 365) * 86_400) }
                    state.keys[key.keyID] = next
                    changes[0] = .putKey(next.record)
                    return ((), changes)
                }
                rotations += 1
            }
        }
        return (rotations, deletions)
    }
}
