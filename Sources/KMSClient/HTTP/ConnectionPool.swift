import Foundation
import KMSTLS
import Synchronization

/// Kept-alive connections to one endpoint, lent to one caller at a time.
package final class ConnectionPool: Sendable {
    let endpoint: Endpoint
    let timeout: TimeInterval
    let caBundle: String?
    let identity: TLSClientSession.Identity?
    let serverName: String?
    let maximumIdle: Int
    /// Idle connections. `HTTPConnection` is not Sendable; the lock hands each to one thread.
    private let idle = Mutex<[UncheckedConnection]>([])

    /// - Parameters:
    ///   - identity: the client certificate for servers that require mutual TLS.
    ///   - serverName: the name the server's certificate must carry, when not the endpoint's host.
    package init(endpoint: Endpoint, timeout: TimeInterval, caBundle: String?, identity: TLSClientSession.Identity? = nil,
                 serverName: String? = nil, maximumIdle: Int = 16) {
        self.endpoint = endpoint
        self.timeout = timeout
        self.caBundle = caBundle
        self.identity = identity
        self.serverName = serverName
        self.maximumIdle = maximumIdle
    }

    /// Sends `request` on a pooled (or new) connection. A kept-alive connection that the server
    /// closed meanwhile fails before any response byte: the request is then sent once more on a new
    /// connection, which is not a retry in the backoff sense.
    package func exchange(_ request: [UInt8]) throws -> HTTPConnection.Response {
        try exchange(request, watchdog: nil)
    }

    /// Sends `request` and has its answer within `deadline` seconds, connect and TLS included,
    /// however slowly the peer sends (a peer's own timing must not hold the caller).
    package func exchange(_ request: [UInt8], deadline: TimeInterval) throws -> HTTPConnection.Response {
        let watchdog = Watchdog(seconds: deadline)
        defer { watchdog.cancel() }
        do {
            return try exchange(request, watchdog: watchdog)
        } catch where watchdog.expired {
            throw HTTPConnection.Failure(description: "timed out after \(deadline) s", beforeResponse: false)
        }
    }

    private func exchange(_ request: [UInt8], watchdog: Watchdog?) throws -> HTTPConnection.Response {
        if let pooled = idle.withLock({ $0.popLast() })?.connection {
            do {
                return try finish(pooled, request, watchdog)
            } catch let failure as HTTPConnection.Failure where failure.beforeResponse && watchdog?.expired != true {
                // stale: fall through to a fresh connection
            }
        }
        return try finish(HTTPConnection(endpoint: endpoint, timeout: timeout, caBundle: caBundle, identity: identity,
                                     serverName: serverName, watchdog: watchdog), request, watchdog)
    }

    private func finish(_ connection: HTTPConnection, _ request: [UInt8], _ watchdog: Watchdog?) throws -> HTTPConnection.Response {
        // Whatever happens, the watchdog lets go of the socket before it is pooled or closed.
        let response: HTTPConnection.Response
        do {
            response = try connection.exchange(request, watchdog: watchdog)
        } catch {
            watchdog?.unwatch()
            throw error
        }
        watchdog?.unwatch()
        if response.keepAlive {
            let kept = UncheckedConnection(connection: connection)
            idle.withLock { if $0.count < maximumIdle { $0.append(kept) } }
        }
        return response
    }
}

/// `@unchecked Sendable`: a connection in the pool is owned by nobody; the pool's lock hands it
/// to exactly one borrower.
private struct UncheckedConnection: @unchecked Sendable {
    let connection: HTTPConnection
}
