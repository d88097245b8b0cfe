import AWSSigV4
import Foundation
import KMSFSCrypto
import KMSTLS
#if canImport(Glibc)
import Glibc
#endif

/// One blocking HTTP/1.1 connection (TCP or Unix socket) with send and receive timeouts.
///
/// Kept alive between requests by ``ConnectionPool``. Used by one thread at a time.
///
/// Answers carry data keys (base64 in a JSON body), so every byte this connection has read is
/// wiped once consumed: the receive buffer keeps its capacity (no reallocation leaves a copy
/// behind for typical answers), consumed ranges and temporary reads are zeroed, and the caller
/// wipes the body it is given (``HTTPKMSClient``). OpenSSL's own record buffers (https) and the
/// kernel's socket buffers are beyond its reach.
package final class HTTPConnection {
    /// The largest answer body accepted (16 MiB): far above any KMS answer, far below memory.
    static let maximumBodyByteCount = 16 << 20
    package struct Response {
        package var status: Int
        package var headers: [(String, String)]
        package var body: [UInt8]
        package var keepAlive: Bool

        package func header(_ name: String) -> String? {
            headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
        }
    }

    /// A transport failure: nothing usable came back.
    package struct Failure: Error, CustomStringConvertible {
        package let description: String
        /// True if the request may not have been sent at all (safe to retry on any connection).
        package let beforeResponse: Bool
        /// False for failures that another attempt cannot fix (a certificate that does not verify).
        package var retryable = true
    }

    private let fd: Int32
    /// The TLS session over `fd` for https endpoints.
    private let tls: TLSClientSession?
    private var buffer: [UInt8] = {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(64 << 10)
        return buffer
    }()
    /// Whether this connection has served a request (a stale kept-alive one may fail at once).
    private(set) var reused = false

    init(endpoint: Endpoint, timeout: TimeInterval, caBundle: String?, identity: TLSClientSession.Identity? = nil,
         serverName: String? = nil, watchdog: Watchdog? = nil) throws {
        var useTLS = false, tlsHost = ""
        switch endpoint {
        case let .tcp(host, port, tls):
            fd = try Self.connectTCP(host: host, port: port, timeout: timeout)
            useTLS = tls
            tlsHost = host
        case let .unix(path):
            fd = try Self.connectUnix(path: path)
        }
        watchdog?.watch(fd)
        var time = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        if useTLS {
            do {
                tls = try TLSClientSession(fd: fd, host: tlsHost, caBundle: caBundle, identity: identity, serverName: serverName)
            } catch {
                watchdog?.unwatch()
                close(fd)
                throw Failure(description: error.description, beforeResponse: true, retryable: !error.isVerificationFailure)
            }
        } else {
            tls = nil
        }
    }

    deinit {
        // A failed exchange may have left part of an answer here.
        buffer.withUnsafeMutableBytes { SecretBytes.wipe($0) }
        close(fd)
    }

    /// Sends one request and reads its response (by `watchdog`'s deadline, if given).
    func exchange(_ request: [UInt8], watchdog: Watchdog? = nil) throws -> Response {
        watchdog?.watch(fd)
        defer { reused = true }
        try send(request)
        return try readResponse()
    }

    private func send(_ bytes: [UInt8]) throws {
        if let tls {
            do { try tls.write(bytes) } catch { throw Failure(description: error.description, beforeResponse: true) }
            return
        }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Failure(description: "send: \(String(cString: strerror(errno)))", beforeResponse: true) }
            offset += n
        }
    }

    /// Reads more bytes into the buffer; false at end of stream.
    private func fill() throws -> Bool {
        if let tls {
            var bytes: [UInt8]
            do { bytes = try tls.read(max: 16384) } catch { throw Failure(description: error.description, beforeResponse: buffer.isEmpty) }
            defer { bytes.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
            buffer += bytes
            return !bytes.isEmpty
        }
        var chunk = [UInt8](repeating: 0, count: 16384)
        defer { chunk.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 {
                let reason = errno == EAGAIN || errno == EWOULDBLOCK ? "timed out" : String(cString: strerror(errno))
                throw Failure(description: "receive: \(reason)", beforeResponse: buffer.isEmpty)
            }
            if n == 0 { return false }
            buffer += chunk[0..<n]
            return true
        }
    }

    private func readResponse() throws -> Response {
        let separator: [UInt8] = [13, 10, 13, 10]
        var headerEnd: Int?
        while headerEnd == nil {
            if let range = buffer.range(of: separator) { headerEnd = range.upperBound; break }
            guard buffer.count < 64 << 10 else { throw Failure(description: "response headers too large", beforeResponse: false) }
            guard try fill() else {
                throw Failure(description: "connection closed before a response", beforeResponse: buffer.isEmpty)
            }
        }
        let head = String(decoding: buffer[0..<headerEnd! - 4], as: UTF8.self)
        consume(headerEnd!)
        let lines = head.components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ", maxSplits: 2)
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else {
            throw Failure(description: "malformed status line", beforeResponse: false)
        }
        var headers: [(String, String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var response = Response(status: status, headers: headers, body: [], keepAlive: !lines[0].hasPrefix("HTTP/1.0"))
        if response.header("connection")?.lowercased() == "close" { response.keepAlive = false }
        if response.header("transfer-encoding")?.lowercased().contains("chunked") == true {
            response.body = try readChunked()
        } else if let text = response.header("content-length") {
            // A length from the network is checked before it is used: negative, malformed or
            // larger than any KMS answer (AWS's largest is well under 1 MiB) is refused, never a trap.
            guard let length = Int(text), length >= 0, length <= Self.maximumBodyByteCount else {
                throw Failure(description: "invalid Content-Length \(text.prefix(32))", beforeResponse: false)
            }
            while buffer.count < length {
                guard try fill() else { throw Failure(description: "connection closed in the body", beforeResponse: false) }
            }
            response.body = Array(buffer[0..<length])
            consume(length)
        } else {
            while try fill() {
                guard buffer.count <= Self.maximumBodyByteCount else { throw Failure(description: "answer too large", beforeResponse: false) }
            }
            response.body = Array(buffer)
            consume(buffer.count)
            response.keepAlive = false
        }
        return response
    }

    private func readChunked() throws -> [UInt8] {
        var body: [UInt8] = []
        body.reserveCapacity(64 << 10)
        do {
            return try readChunks(into: &body)
        } catch {
            body.withUnsafeMutableBytes { SecretBytes.wipe($0) }
            throw error
        }
    }

    private func readChunks(into body: inout [UInt8]) throws -> [UInt8] {
        while true {
            while buffer.range(of: [13, 10]) == nil {
                guard buffer.count < 4096 else { throw Failure(description: "chunk size line too long", beforeResponse: false) }
                guard try fill() else { throw Failure(description: "connection closed in a chunk", beforeResponse: false) }
            }
            let lineEnd = buffer.range(of: [13, 10])!
            let sizeText = String(decoding: buffer[0..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
            // Sizes from the network are checked before use: negative or past the body limit is
            // refused, never a trap.
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0,
                  size <= Self.maximumBodyByteCount - body.count else {
                throw Failure(description: "malformed or oversized chunk size", beforeResponse: false)
            }
            consume(lineEnd.upperBound)
            while buffer.count < size + 2 {
                guard try fill() else { throw Failure(description: "connection closed in a chunk", beforeResponse: false) }
            }
            body += buffer[0..<size]
            consume(size + 2)
            if size == 0 { return body }
        }
    }

    /// Drops the first `count` bytes of the buffer. The rest moves down and every byte it leaves
    /// behind is zeroed (Array.removeFirst would leave a stale copy of the buffer's tail — an
    /// answer's last bytes, where its data key is — beyond the new end).
    private func consume(_ count: Int) {
        buffer.withUnsafeMutableBytes { all in
            let rest = all.count - count
            if rest > 0 { memmove(all.baseAddress!, all.baseAddress! + count, rest) }
            SecretBytes.wipe(UnsafeMutableRawBufferPointer(rebasing: all[rest...]))
        }
        buffer.removeLast(count)
    }

    private static func connectUnix(path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))", beforeResponse: true) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw Failure(description: "socket path too long: \(path)", beforeResponse: true)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes + [0]) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw Failure(description: "connect \(path): \(reason)", beforeResponse: true)
        }
        return fd
    }

    private static func connectTCP(host: String, port: Int, timeout: TimeInterval) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            throw Failure(description: "cannot resolve \(host)", beforeResponse: true)
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            cursor = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue),
                            info.pointee.ai_protocol)
            guard fd >= 0 else { continue }
            if connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) != 0 && errno != EINPROGRESS {
                lastError = String(cString: strerror(errno))
                close(fd)
                continue
            }
            var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ready = poll(&poller, 1, Int32(timeout * 1000))
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            guard ready == 1, error == 0 else {
                lastError = ready == 0 ? "connect timed out" : String(cString: strerror(error))
                close(fd)
                continue
            }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
            return fd
        }
        throw Failure(description: "connect \(host):\(port): \(lastError)", beforeResponse: true)
    }
}

extension SigV4Request {
    /// The request on the wire, as kmsfs's clients send it: request line, its (signed) headers,
    /// Content-Length, then the body.
    package var httpBytes: [UInt8] {
        var text = "\(method) \(path) HTTP/1.1\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "Content-Length: \(body.count)\r\n\r\n"
        return Array(text.utf8) + body
    }
}
