import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// How a multi-chunk seal or open is spread over the cores.
///
/// A request is split into stripes of consecutive chunks; each stripe runs on one Dispatch worker
/// with one borrowed cipher context. A few stripes per core even out a noisy scheduler. Below
/// ``minimumParallelBytes`` the hand-off costs more than it saves, so the work stays on the
/// calling thread (and so does any single chunk).
public struct ChunkParallelism: Sendable, Equatable {
    public var cores: Int
    public var stripesPerCore: Int
    public var minimumParallelBytes: Int

    public init(cores: Int = ChunkParallelism.onlineCores, stripesPerCore: Int = 4, minimumParallelBytes: Int = 64 << 10) {
        self.cores = max(1, cores)
        self.stripesPerCore = max(1, stripesPerCore)
        self.minimumParallelBytes = minimumParallelBytes
    }

    /// Everything on the calling thread.
    public static let serial = ChunkParallelism(cores: 1, stripesPerCore: 1, minimumParallelBytes: .max)

    /// Read once: glibc answers sysconf(_SC_NPROCESSORS_ONLN) by opening and parsing
    /// /sys/devices/system/cpu/online, which every file creation and open would pay for.
    public static let onlineCores: Int = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    /// Runs `body` over `0..<chunkCount` split into stripes, in parallel when worth it.
    ///
    /// - Throws: the error of the lowest failing stripe, so that a report names the first bad chunk.
    func forEachStripe(chunkCount: Int, byteCount: Int, _ body: (Range<Int>) throws -> Void) throws {
        let stripes = min(chunkCount, cores * stripesPerCore)
        guard stripes > 1, cores > 1, byteCount >= minimumParallelBytes else {
            return try body(0..<chunkCount)
        }
        let errors = UnsafeMutableBufferPointer<(any Error)?>.allocate(capacity: stripes)
        errors.initialize(repeating: nil)
        defer { errors.deinitialize().deallocate() }
        withoutActuallyEscaping(body) { body in
            let shared = StripeShared(body: body, errors: errors)
            DispatchQueue.concurrentPerform(iterations: stripes) { stripe in
                // Stripe s takes chunks [s·n/k, (s+1)·n/k): sizes differ by at most one.
                let range = (stripe * chunkCount / stripes)..<((stripe + 1) * chunkCount / stripes)
                do { try shared.body(range) } catch { shared.errors[stripe] = error }
            }
        }
        if let first = errors.lazy.compactMap({ $0 }).first { throw first }
    }
}

/// What every stripe of one ``ChunkParallelism/forEachStripe(chunkCount:byteCount:_:)`` call shares.
///
/// `@unchecked Sendable`: `concurrentPerform` returns only after every stripe has finished, so the
/// borrowed closure and buffers outlive all uses; stripes touch disjoint chunks and disjoint
/// error slots, and the closure's own state is the caller's buffers, split the same way.
private struct StripeShared: @unchecked Sendable {
    let body: (Range<Int>) throws -> Void
    let errors: UnsafeMutableBufferPointer<(any Error)?>
}
