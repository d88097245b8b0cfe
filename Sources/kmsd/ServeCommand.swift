import ArgumentParser
import Dispatch
import Foundation
import KMSEngine
import KMSServer

/// `kmsd serve`: serve the AWS KMS API until SIGTERM or SIGINT.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the AWS KMS JSON API on TCP and Unix-socket listeners."
    )

    @OptionGroup var storeOptions: StoreOptions

    @Option(name: .customLong("listen"), help: """
        A listener: tcp://HOST:PORT or unix:///PATH[?mode=0660]. Repeat for several; default tcp://127.0.0.1:8080.
        """)
    var listeners: [String] = []

    @Option(help: "Largest request body accepted, in bytes.")
    var maxBodyBytes: Int = 1 << 20

    @Option(help: "Close a connection that sends nothing for this many seconds.")
    var idleTimeout: Int64 = 30

    func run() throws {
        var configuration = ServerConfiguration(listeners: try (listeners.isEmpty ? ["tcp://127.0.0.1:8080"] : listeners).map(Self.parse))
        configuration.maximumBodyBytes = maxBodyBytes
        configuration.idleTimeoutSeconds = idleTimeout
        let engine = try storeOptions.openEngine(scheduler: true)
        let server = try KMSServer(engine: engine, configuration: configuration)
        for address in server.boundAddresses { print("kmsd: listening on \(address)") }
        print("kmsd: ready")
        fflush(nil)

        // SIGTERM/SIGINT: stop accepting, finish in-flight requests, flush the audit, exit 0.
        let stop = DispatchSemaphore(value: 0)
        var sources: [any DispatchSourceSignal] = []
        for signalNumber in [SIGTERM, SIGINT] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { stop.signal() }
            source.resume()
            sources.append(source)
        }
        stop.wait()
        print("kmsd: shutting down")
        server.shutdown()
        print("kmsd: stopped")
    }

    static func parse(_ text: String) throws -> ServerConfiguration.Listener {
        if text.hasPrefix("tcp://") {
            let rest = text.dropFirst(6)
            guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (0...65535).contains(port) else {
                throw ValidationError("a TCP listener is tcp://HOST:PORT: \(text)")
            }
            return .tcp(host: String(rest[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port: port)
        }
        if text.hasPrefix("unix://") {
            var path = String(text.dropFirst(7))
            var mode: UInt16 = 0o660
            if let question = path.firstIndex(of: "?") {
                let query = path[path.index(after: question)...]
                path = String(path[..<question])
                guard query.hasPrefix("mode="), let value = UInt16(query.dropFirst(5), radix: 8) else {
                    throw ValidationError("a Unix listener is unix:///PATH[?mode=0660]: \(text)")
                }
                mode = value
            }
            guard path.hasPrefix("/") else { throw ValidationError("a Unix socket path must be absolute: \(text)") }
            return .unix(path: path, mode: mode)
        }
        throw ValidationError("unknown listener \(text): use tcp://HOST:PORT or unix:///PATH")
    }
}
