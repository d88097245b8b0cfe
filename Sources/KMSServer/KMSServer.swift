import Foundation
import KMSAuthorization
import KMSEngine
import KMSWire
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// kmsd's network side: the listeners, and the handler pipeline on each connection.
public final class KMSServer: Sendable {
    public let engine: KMSEngine
    public let configuration: ServerConfiguration
    private let group: MultiThreadedEventLoopGroup
    private let blockingPool: NIOThreadPool
    private let slowPool: NIOThreadPool
    private let externalPool: NIOThreadPool
    private let channels: [any Channel]
    private let connections: ConnectionGuard.Count

    /// Connections open now (for metrics).
    public var openConnections: Int { connections.current }

    /// The addresses actually bound, in the order of the configured listeners.
    public var boundAddresses: [String] {
        zip(channels, configuration.listeners).map { channel, listener in
            guard let address = channel.localAddress else { return "?" }
            if let path = address.pathname { return "unix://\(path)" }
            let scheme = if case .tls = listener { "https" } else { "http" }
            return "\(scheme)://\(address.ipAddress ?? "?"):\(address.port ?? 0)"
        }
    }

    /// Binds every listener and starts serving.
    /// - Throws: if a listener cannot be bound (address in use, bad path); nothing is left bound.
    public init(engine: KMSEngine, configuration: ServerConfiguration) throws {
        self.engine = engine
        self.configuration = configuration
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.threads))
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        // One thread for key generation: at most one core of two spent on it, whoever asks.
        let slow = NIOThreadPool(numberOfThreads: 1)
        slow.start()
        // Calls that wait on custom key stores: a proxy may hold ProxyConnection.maximumInFlight
        // of these for a deadline each, so there are more threads than one proxy can hold.
        let external = NIOThreadPool(numberOfThreads: 8)
        external.start()
        let service = KMSProtocol(engine: engine)
        let query = QueryProtocol(engine: engine)
        let authenticator = RequestAuthenticator(engine: engine, allowedSkew: configuration.allowedSkewSeconds,
                                                 hostNames: configuration.hostNames, onUnknownAccessKey: configuration.onUnknownAccessKey)
        let limit = configuration.maximumBodyBytes
        let idle = TimeAmount.seconds(configuration.idleTimeoutSeconds)
        let requestDeadline = TimeAmount.seconds(configuration.requestTimeoutSeconds)
        let connections = ConnectionGuard.Count(limit: configuration.maximumConnections)
        self.connections = connections
        /// One bootstrap per kind of listener: TLS listeners put the TLS handler first.
        func bootstrap(tls: NIOSSLContext?, policy: Policy?) -> ServerBootstrap {
            let endpoint = Endpoint(secure: tls != nil, policy: policy)
            return ServerBootstrap(group: group)
                .serverChannelOption(ChannelOptions.backlog, value: 512)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        if let tls { try sync.addHandler(NIOSSLServerHandler(context: tls)) }
                        let connectionGuard = ConnectionGuard(count: connections, deadline: requestDeadline)
                        try sync.addHandler(connectionGuard)
                        try sync.addHandler(IdleStateHandler(readTimeout: idle))
                        try sync.configureHTTPServerPipeline(withErrorHandling: true, withOutboundHeaderValidation: false)
                        try sync.addHandler(
                            KMSHTTPHandler(service: service, query: query, endpoint: endpoint, authenticator: authenticator,
                                           blockingPool: pool, slowPool: slow, externalPool: external, maximumBodyBytes: limit, serveTestReset: configuration.serveTestReset,
                                           connectionGuard: connectionGuard))
                    }
                }
        }
        var bound: [any Channel] = []
        do {
            for (index, listener) in configuration.listeners.enumerated() {
                let policy = configuration.endpointPolicies[index]
                let plain = bootstrap(tls: nil, policy: policy)
                switch listener {
                case let .tcp(host, port):
                    bound.append(try plain.bind(host: host, port: port).wait())
                case let .tls(host, port, certificate, key):
                    let context = try Self.tlsContext(certificate: certificate, key: key)
                    bound.append(try bootstrap(tls: context, policy: policy).bind(host: host, port: port).wait())
                case let .unix(path, mode):
                    // A stale socket file from a crash would make bind fail; only a socket is removed.
                    var info = stat()
                    if lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFSOCK { unlink(path) }
                    let channel = try plain.bind(unixDomainSocketPath: path).wait()
                    bound.append(channel)
                    guard chmod(path, mode_t(mode)) == 0 else {
                        throw ServerError("cannot set mode \(String(mode, radix: 8)) on \(path)")
                    }
                }
            }
        } catch {
            for channel in bound { try? channel.close().wait() }
            try? pool.syncShutdownGracefully()
            try? slow.syncShutdownGracefully()
            try? external.syncShutdownGracefully()
            try? group.syncShutdownGracefully()
            throw error
        }
        self.group = group
        self.blockingPool = pool
        self.slowPool = slow
        self.externalPool = external
        self.channels = bound
    }

    /// A server TLS context: TLS 1.2 or later, the chain and key from PEM files.
    static func tlsContext(certificate: String, key: String) throws -> NIOSSLContext {
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(certificate)
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
            configuration.minimumTLSVersion = .tlsv12
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw ServerError("cannot set up TLS with certificate \(certificate) and key \(key): \(error)")
        }
    }

    /// Stops accepting, lets in-flight requests finish, then flushes the audit trail.
    public func shutdown() {
        for channel in channels { try? channel.close().wait() }
        try? blockingPool.syncShutdownGracefully()
        try? slowPool.syncShutdownGracefully()
        try? externalPool.syncShutdownGracefully()
        try? group.syncShutdownGracefully()
        for case let .unix(path, _) in configuration.listeners { unlink(path) }
        try? engine.flushAudit()
    }
}

/// A listener that could not be set up.
public struct ServerError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
