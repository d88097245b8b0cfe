import Foundation

/// A lock around code that runs on the caller's thread and returns what it made there: unlike a
/// `Mutex`, it asks nothing of the body's isolation (a `Mutex` needs what the body returns to be
/// sendable to another region, which a management operation's result built from the caller's
/// closures is not, though it never leaves the caller's thread).
final class ExclusiveLock: @unchecked Sendable {
    private let lock = NSLock()

    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }
}
