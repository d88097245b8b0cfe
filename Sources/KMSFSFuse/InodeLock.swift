import Foundation

/// The lock of one inode's contents: reads run in parallel, and so do writes to disjoint chunks
/// that leave the size alone; anything that changes the size (an extending write, a truncate, an
/// append, fallocate) has the file to itself.
///
/// Two levels, because the chunk a write seals depends on the size: a shared hold on the size
/// plus a shared (read) or exclusive (write) hold on a chunk range, or an exclusive hold on the
/// whole file. Waiting exclusive holders stop new shared ones, so a stream of reads cannot
/// starve a truncate. Chunks of one range are never held twice by one thread (no re-entry).
final class InodeLock: @unchecked Sendable {
    /// Chunk indices, inclusive.
    struct Range {
        let first: Int64
        let last: Int64
        func overlaps(_ other: Range) -> Bool { first <= other.last && other.first <= last }
    }

    private struct Hold {
        let range: Range
        let exclusive: Bool
    }

    private let condition = NSCondition()
    // All guarded by `condition`.
    private var sharedHolders = 0
    private var wholeFileHeld = false
    private var wholeFileWaiting = 0
    private var holds: [Int: Hold] = [:]
    private var nextHold = 0

    /// Runs `body` with the size fixed and `range` held: shared for reads, exclusive for writes.
    func withRange<R>(_ range: Range, exclusive: Bool, _ body: () throws -> R) rethrows -> R {
        condition.lock()
        while wholeFileHeld || wholeFileWaiting > 0 || holds.values.contains(where: { ($0.exclusive || exclusive) && $0.range.overlaps(range) }) {
            condition.wait()
        }
        sharedHolders += 1
        let token = nextHold
        nextHold += 1
        holds[token] = Hold(range: range, exclusive: exclusive)
        condition.unlock()
        defer {
            condition.lock()
            sharedHolders -= 1
            holds[token] = nil
            condition.broadcast()
            condition.unlock()
        }
        return try body()
    }

    /// Runs `body` alone with the file: no other reader or writer of this inode runs meanwhile.
    func withWholeFile<R>(_ body: () throws -> R) rethrows -> R {
        condition.lock()
        wholeFileWaiting += 1
        while wholeFileHeld || sharedHolders > 0 { condition.wait() }
        wholeFileWaiting -= 1
        wholeFileHeld = true
        condition.unlock()
        defer {
            condition.lock()
            wholeFileHeld = false
            condition.broadcast()
            condition.unlock()
        }
        return try body()
    }
}
