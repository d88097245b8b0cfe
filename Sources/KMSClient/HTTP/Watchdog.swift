import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A deadline for a whole exchange, connect and TLS handshake included: a socket timeout bounds
/// each read, so a peer that trickles a byte at a time could hold a caller for as long as it
/// likes; at the deadline the watchdog shuts the socket down, and the blocked call fails at once.
final class Watchdog: @unchecked Sendable {
    // @unchecked: every field is read and written under `lock`.
    private let lock = NSLock()
    private var descriptor: Int32 = -1
    private var done = false
    private var fired = false
    private let timer: any DispatchSourceTimer

    init(seconds: TimeInterval) {
        timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + seconds)
        timer.setEventHandler { [weak self] in self?.fire() }
        timer.resume()
    }

    /// The socket to shut down at the deadline (shut down now if it has passed).
    func watch(_ descriptor: Int32) {
        lock.lock()
        defer { lock.unlock() }
        self.descriptor = descriptor
        if fired && !done { shutdown(descriptor, Int32(SHUT_RDWR)) }
    }

    /// The socket is about to be closed or pooled: the watchdog must not touch its number again
    /// (another connection may get it).
    func unwatch() {
        lock.lock()
        defer { lock.unlock() }
        descriptor = -1
    }

    var expired: Bool {
        lock.lock()
        defer { lock.unlock() }
        return fired
    }

    private func fire() {
        lock.lock()
        defer { lock.unlock() }
        fired = true
        if !done, descriptor >= 0 { shutdown(descriptor, Int32(SHUT_RDWR)) }
    }

    /// The exchange is over: the socket is left alone from now on (it may go back to a pool).
    func cancel() {
        lock.lock()
        done = true
        lock.unlock()
        timer.cancel()
    }
}
