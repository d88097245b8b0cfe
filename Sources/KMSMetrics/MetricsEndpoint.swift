import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A Prometheus endpoint (a mount's, kmsd's): `GET /metrics` over HTTP/1.1 on a Unix socket
/// (created 0600: the metrics say what the process is doing) or a loopback TCP port, on a
/// thread of its own. One request per connection, a 2-second deadline and an 8 KiB request
/// limit: a scraper that stalls or sends garbage holds a connection for two seconds at most and
/// costs nothing else.
public final class MetricsEndpoint: @unchecked Sendable {
    public enum Address: Equatable, Sendable {
        case unix(String)
        case loopback(port: UInt16)

        /// `unix:/path`, or `127.0.0.1:PORT` / `localhost:PORT` / `PORT` (loopback only: the
        /// metrics are not for the network).
        public init?(_ text: String) {
            if text.hasPrefix("unix:") {
                let path = String(text.dropFirst(5))
                guard path.hasPrefix("/"), path.utf8.count < 108 else { return nil }
                self = .unix(path)
                return
            }
            let port = text.split(separator: ":").last.map(String.init) ?? text
            let host = text.contains(":") ? String(text[..<text.lastIndex(of: ":")!]) : "127.0.0.1"
            guard ["127.0.0.1", "localhost"].contains(host), let number = UInt16(port), number > 0 else { return nil }
            self = .loopback(port: number)
        }
    }

    private let listener: Int32
    private let address: Address
    private let render: @Sendable () -> String

    public init(_ address: Address, render: @escaping @Sendable () -> String) throws {
        self.address = address
        self.render = render
        switch address {
        case let .unix(path):
            var name = sockaddr_un()
            name.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &name.sun_path) { raw in
                raw.copyBytes(from: path.utf8.prefix(raw.count - 1))
            }
            unlink(path)  // a socket a previous mount left
            let previous = umask(0o177)
            defer { umask(previous) }
            listener = try Self.listen(AF_UNIX, &name)
        case let .loopback(port):
            var name = sockaddr_in()
            name.sin_family = sa_family_t(AF_INET)
            name.sin_port = port.bigEndian
            name.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
            listener = try Self.listen(AF_INET, &name)
        }
        let thread = Thread { [self] in serve() }
        thread.name = "metrics"
        thread.start()
    }

    /// A listening socket of `family` bound to `address` (a sockaddr_un or sockaddr_in).
    private static func listen<Address>(_ family: Int32, _ address: inout Address) throws -> Int32 {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw MetricsEndpointError(errno: errno) }
        var yes: Int32 = 1
        if family == AF_INET { setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<Address>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 16) == 0 else {
            let error = errno
            Glibc.close(fd)
            throw MetricsEndpointError(errno: error)
        }
        return fd
    }

    /// Stops accepting; the thread ends at its next accept and closes the socket.
    public func close() {
        shutdown(listener, Int32(SHUT_RDWR))
        if case let .unix(path) = address { unlink(path) }
    }

    private func serve() {
        while true {
            let connection = accept(listener, nil, nil)
            if connection < 0 {
                if errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE { usleep(10_000); continue }
                Glibc.close(listener)  // shut down
                return
            }
            answer(connection)
            Glibc.close(connection)
        }
    }

    private func answer(_ connection: Int32) {
        var deadline = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &deadline, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &deadline, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2048)
        // Two seconds for the whole request, not per read: a byte now and then must not hold
        // the endpoint (it serves one connection at a time).
        let end = DispatchTime.now().uptimeNanoseconds + 2_000_000_000
        while request.count < 8192, request.firstRange(of: [13, 10, 13, 10]) == nil {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < end else { return }
            let left = end - now
            var remaining = timeval(tv_sec: Int(left / 1_000_000_000), tv_usec: Int(left % 1_000_000_000 / 1000))
            setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &remaining, socklen_t(MemoryLayout<timeval>.size))
            let n = chunk.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return }
            request += chunk[0..<n]
        }
        let line = request.split(separator: 13, maxSplits: 1).first.map { String(decoding: $0, as: UTF8.self) } ?? ""
        let parts = line.split(separator: " ")
        let (status, body): (String, String)
        if parts.count == 3, parts[0] == "GET", parts[1] == "/metrics" || parts[1].hasPrefix("/metrics?") {
            (status, body) = ("200 OK", render())
        } else {
            (status, body) = ("404 Not Found", "GET /metrics is served here\n")
        }
        let head = "HTTP/1.1 \(status)\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n"
        let bytes = Array(head.utf8) + Array(body.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(connection, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return }
            sent += n
        }
    }
}

/// The endpoint's socket could not be made (in use, no permission).
public struct MetricsEndpointError: Error, CustomStringConvertible {
    public let errno: Int32
    public var description: String { String(cString: strerror(errno)) }
}
