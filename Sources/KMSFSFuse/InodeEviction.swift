import Dispatch
import Logging
import Synchronization

/// Keeps the inode table within the daemon's descriptors.
///
/// Every inode the kernel knows holds an O_PATH descriptor (``InodeTable``), and the kernel
/// forgets inodes only under memory pressure: a walk over more files than the descriptor limit
/// (20 000 on some machines) ended in EMFILE for every user of the mount — and on a shared mount
/// any user could cause that by listing enough files. Past a third of the limit, the least recently
/// used names are offered back to the kernel (FUSE_NOTIFY_INVAL_ENTRY); an inode no one holds
/// open then leaves the kernel's cache, and its FORGET closes the descriptor.
final class InodeEviction: Sendable {
    private let inodes: InodeTable
    /// Inodes beyond which a pass starts; a pass brings the table down to half of it.
    let highWater: Int
    private let running = Atomic<Bool>(false)
    private let passes = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)
    private let queue = DispatchQueue(label: "kmsfs.inode-eviction")
    private let logger: Logger

    /// `descriptors`: the daemon's descriptor limit. Two thirds are left for open files, cloned
    /// /dev/fuse descriptors, key-service connections, the log — and the lookups that arrive
    /// before the kernel's FORGETs do (it sends at most 16 between other requests), which a
    /// fast walk makes many.
    init(inodes: InodeTable, descriptors: Int, logger: Logger) {
        self.inodes = inodes
        self.highWater = max(64, descriptors / 3)
        self.logger = logger
    }

    /// Whether the table is past its high-water mark.
    var isPressed: Bool { inodes.count > highWater }

    /// Waits for a pass under way, and starts no more: the session it talks to is about to go.
    func finish() {
        stopped.store(true, ordering: .releasing)
        queue.sync {}
    }

    /// Called after each lookup; starts a pass (on its own thread: the kernel may wait, while
    /// invalidating, for a request a worker is answering) unless one is running.
    func check() {
        guard inodes.count > highWater, !running.exchange(true, ordering: .acquiringAndReleasing) else { return }
        queue.async { [self] in
            defer { running.store(false, ordering: .releasing) }
            guard !stopped.load(ordering: .acquiring) else { return }
            // Counted again here: the kernel may have forgotten inodes since the check.
            let before = inodes.count
            guard before > highWater else { return }
            let names = inodes.leastRecentlyUsed(before - highWater / 2)
            var refused = 0
            for entry in names where !KernelChannel.invalidateEntry(parent: entry.parent, name: entry.name) { refused += 1 }
            // Said once at notice (the limit is worth raising: LimitNOFILE=), then at debug.
            let level: Logger.Level = passes.add(1, ordering: .relaxed).oldValue == 0 ? .notice : .debug
            logger.log(level: level, "inode table at \(before) of \(highWater) (a third of the descriptor limit): \(names.count) least recently used names offered back to the kernel (\(refused) refused); a higher descriptor limit keeps more")
        }
    }
}
