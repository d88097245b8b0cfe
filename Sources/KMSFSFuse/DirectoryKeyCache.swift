import KMSFSVolume
import Synchronization

/// Resolved default keys of directories, so that creating a file does not walk up to the root
/// (a getxattr and an openat per level) each time.
///
/// Any change that can alter a resolution — setting or removing `user.kmsfs.key-id`, or any
/// rename (a directory may move under another key) — clears it all: those are rare next to
/// creates. Changes made to the backing directory behind the mount's back are not seen until
/// then, like every other such change.
final class DirectoryKeyCache: Sendable {
    typealias Resolution = (keyID: String, source: DirectoryKey.Source)
    /// The generation counts invalidations: a resolution computed across one is not kept.
    private let state = Mutex<(generation: UInt64, entries: [UInt64: Resolution])>((0, [:]))

    func resolve(_ directory: UInt64, _ compute: () throws -> Resolution) rethrows -> Resolution {
        let (generation, known) = state.withLock { ($0.generation, $0.entries[directory]) }
        if let known { return known }
        let resolved = try compute()
        state.withLock { if $0.generation == generation { $0.entries[directory] = resolved } }
        return resolved
    }

    func invalidateAll() {
        state.withLock {
            $0.generation += 1
            $0.entries.removeAll()
        }
    }

    func forget(_ directory: UInt64) { _ = state.withLock { $0.entries.removeValue(forKey: directory) } }
}
