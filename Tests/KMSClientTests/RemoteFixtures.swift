import Foundation
import Synchronization

/// The directory of the built products (kmsd sits beside the test bundle).
let productsDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()

func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A real kmsd process with a fresh store; stopped (SIGTERM, then SIGKILL) when released.
/// `@unchecked Sendable`: a test starts and stops it from one thread at a time.
final class KmsdProcess: @unchecked Sendable {
    let directory: URL
    let accessKeyID: String
    let secret: String
    let port: Int
    let socketPath: String
    private var process: Process?
    /// More `kmsd serve` arguments (a TLS listener and its files).
    private let extraArguments: [String]

    init(port: Int = freePort(), directory: URL? = nil, extraArguments: [String] = []) throws {
        self.extraArguments = extraArguments
        let fresh = directory == nil
        self.directory = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("kmsd-client-\(UUID().uuidString)")
        self.port = port
        self.socketPath = self.directory.appendingPathComponent("kmsd.sock").path
        if fresh {
            try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
            let output = try Self.run(["init", "--store", self.directory.appendingPathComponent("keys.sqlite").path, "--account", "111122223333"])
            accessKeyID = output.components(separatedBy: "access key id: ")[1].components(separatedBy: "\n")[0]
            secret = output.components(separatedBy: "secret access key: ")[1].components(separatedBy: "\n")[0]
            try output.write(to: self.directory.appendingPathComponent("init.txt"), atomically: true, encoding: .utf8)
        } else {
            let output = try String(contentsOf: self.directory.appendingPathComponent("init.txt"), encoding: .utf8)
            accessKeyID = output.components(separatedBy: "access key id: ")[1].components(separatedBy: "\n")[0]
            secret = output.components(separatedBy: "secret access key: ")[1].components(separatedBy: "\n")[0]
        }
        try start()
    }

    deinit { stop() }

    func start() throws {
        let process = Process()
        process.executableURL = productsDirectory.appendingPathComponent("kmsd")
        process.arguments = ["serve", "--store", directory.appendingPathComponent("keys.sqlite").path,
                             "--listen", "tcp://127.0.0.1:\(port)", "--listen", "unix://\(socketPath)?mode=0600"] + extraArguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        self.process = process
        var seen = ""
        let deadline = Date().addingTimeInterval(30)
        while !seen.contains("kmsd: ready") {
            let data = output.fileHandleForReading.availableData
            guard !data.isEmpty, Date() < deadline else { throw KmsdError(message: "kmsd did not start: \(seen)") }
            seen += String(decoding: data, as: UTF8.self)
        }
    }

    func stop() {
        guard let process, process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        self.process = nil
    }

    func cleanUp() {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    static func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = productsDirectory.appendingPathComponent("kmsd")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw KmsdError(message: "kmsd \(arguments) failed") }
        return String(decoding: data, as: UTF8.self)
    }
}

struct KmsdError: Error { let message: String }

/// moto's server (from PyPI) on a free loopback port; stopped when released.
final class MotoProcess {
    let port = freePort()
    private let process = Process()

    init() throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["moto_server", "-H", "127.0.0.1", "-p", String(port)]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let ok = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            close(fd)
            if ok == 0 { return }
            usleep(100_000)
        }
        process.terminate()
        throw KmsdError(message: "moto_server did not start")
    }

    deinit {
        guard process.isRunning else { return }
        // moto's server does not always stop on SIGTERM: give it a moment, then SIGKILL.
        process.terminate()
        let deadline = Date().addingTimeInterval(3)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

/// A counter shared with a server thread.
final class Counter: Sendable {
    private let value = Mutex(0)
    /// Returns the count before the increment.
    func next() -> Int { value.withLock { n in n += 1; return n - 1 } }
    var count: Int { value.withLock { $0 } }
}

/// A tiny HTTP proxy that answers the first requests with canned responses and counts them;
/// after those (or with `forwardTo: nil`, repeating the last canned one) it forwards each request
/// to a real server and relays the answer.
final class CannedServer: Sendable {
    let port: Int
    let requests = Counter()
    private let listener: Int32

    /// `responses`: (status, JSON body) answered in turn; then requests go to `forwardTo`.
    /// Status 0 sends the body as the whole raw answer (for malformed ones).
    init(responses: [(Int, String)], forwardTo: Int? = nil) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(fd, 16)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let counter = requests
        let canned = responses.map { "\($0.0)\u{0}\($0.1)" }
        Thread {
            while true {
                let client = accept(fd, nil, nil)
                guard client >= 0 else { return }
                // One request per connection: read headers and body, answer, close.
                var data = [UInt8]()
                var buffer = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = recv(client, &buffer, buffer.count, 0)
                    if n <= 0 { break }
                    data += buffer[0..<n]
                    if let end = data.firstRange(of: Array("\r\n\r\n".utf8)) {
                        let head = String(decoding: data[..<end.lowerBound], as: UTF8.self).lowercased()
                        let length = head.components(separatedBy: "content-length: ").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) } ?? 0
                        if data.count - end.upperBound >= length { break }
                    }
                }
                let index = counter.next()
                if let forwardTo, index >= canned.count {
                    // Relay to the real server (one request, Connection: close) and back.
                    let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                    var target = sockaddr_in()
                    target.sin_family = sa_family_t(AF_INET)
                    target.sin_port = UInt16(forwardTo).bigEndian
                    target.sin_addr.s_addr = inet_addr("127.0.0.1")
                    _ = withUnsafePointer(to: &target) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
                    let closing = String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\r\n\r\n", with: "\r\nConnection: close\r\n\r\n", options: [], range: nil)
                    _ = closing.withCString { send(upstream, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
                    while true {
                        let n = recv(upstream, &buffer, buffer.count, 0)
                        if n <= 0 { break }
                        _ = buffer.withUnsafeBytes { send(client, $0.baseAddress, n, Int32(MSG_NOSIGNAL)) }
                    }
                    close(upstream)
                    close(client)
                    continue
                }
                let parts = canned[min(index, canned.count - 1)].split(separator: "\u{0}", maxSplits: 1).map(String.init)
                let (status, body) = (parts[0], parts.count > 1 ? parts[1] : "")
                let text = status == "0" ? body : "HTTP/1.1 \(status) X\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
                _ = text.withCString { send(client, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
                close(client)
            }
        }.start()
    }

    deinit { shutdown(listener, Int32(SHUT_RDWR)); close(listener) }
}
