import Foundation
import KMSEngine
import KMSFSCrypto
import KMSPeers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// kmsd's listener for peer deployments: HTTPS that requires a client certificate from the
/// peers' CA (mutual TLS), in front of a ``PeerService``. The certificate's DNS names say which
/// peer is calling; the engine decides what that peer may change. Messages are applied on a
/// small thread pool, never on the event loop.
public final class PeerServer: Sendable {
    private let group: MultiThreadedEventLoopGroup
    private let pool: NIOThreadPool
    private let channel: any Channel
    public let boundAddress: String
    /// Largest message read: the engine's limit.
    static let maximumBody = KMSEngine.maximumPeerMessageBytes
    /// Connections at once (peers keep one or two each), and how long a message may take to arrive.
    static let maximumConnections = 64
    static let requestDeadline = TimeAmount.seconds(10)

    public init(service: PeerService, host: String, port: Int, certificate: String, key: String, caBundle: String,
                idleTimeoutSeconds: Int64 = 30) throws {
        let context: NIOSSLContext
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(certificate)
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
            configuration.minimumTLSVersion = .tlsv12
            // A client certificate is required and checked against the peers' CA; which peer it
            // names is the handler's to decide (no host name to check on the server side).
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .file(caBundle)
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw ServerError("cannot set up the peer listener's mutual TLS with \(certificate), \(key) and CA \(caBundle): \(error)")
        }
        let connections = ConnectionGuard.Count(limit: Self.maximumConnections)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        do {
            channel = try ServerBootstrap(group: group)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        let tls = NIOSSLServerHandler(context: context)
                        // Counted from the TCP connection on (a handshake never finished holds a
                        // place only until the idle timeout).
                        let connectionGuard = ConnectionGuard(count: connections, deadline: Self.requestDeadline)
                        try sync.addHandler(tls)
                        try sync.addHandler(connectionGuard)
                        try sync.addHandler(IdleStateHandler(readTimeout: .seconds(idleTimeoutSeconds)))
                        try sync.configureHTTPServerPipeline(withErrorHandling: true)
                        try sync.addHandler(PeerHandler(service: service, pool: pool, connectionGuard: connectionGuard))
                    }
                }
                .bind(host: host, port: port).wait()
        } catch {
            try? pool.syncShutdownGracefully()
            try? group.syncShutdownGracefully()
            throw ServerError("cannot listen for peers on \(host):\(port): \(error)")
        }
        self.group = group
        self.pool = pool
        boundAddress = "https://\(channel.localAddress?.ipAddress ?? host):\(channel.localAddress?.port ?? port)"
    }

    public func shutdown() {
        try? channel.close().wait()
        try? pool.syncShutdownGracefully()
        try? group.syncShutdownGracefully()
    }
}

/// One peer connection: collects a message, applies it on the pool with the names of the
/// client's certificate, answers.
final class PeerHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let service: PeerService
    private let pool: NIOThreadPool
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false
    private let connectionGuard: ConnectionGuard

    init(service: PeerService, pool: NIOThreadPool, connectionGuard: ConnectionGuard) {
        self.service = service
        self.pool = pool
        self.connectionGuard = connectionGuard
    }

    /// The DNS names of the verified client certificate.
    private static func certificateNames(_ context: ChannelHandlerContext) -> [String] {
        guard let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate else { return [] }
        return certificate._subjectAlternativeNames().compactMap { name in
            name.nameType == .dnsName ? String(decoding: Array(name.contents), as: UTF8.self) : nil
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(requestHead):
            head = requestHead
            body = []
            tooLarge = false
        case var .body(buffer):
            if body.count + buffer.readableBytes > PeerServer.maximumBody { tooLarge = true; return }
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            guard let head else { return }
            self.head = nil
            connectionGuard.requestReceived()
            var request = body
            body = []
            if tooLarge {
                let answer = PeerService.Answer(status: 413, body: Array("{\"__type\":\"ValidationException\",\"message\":\"the message is too large\"}".utf8))
                return write(context: context, answer, keepAlive: false)
            }
            let keepAlive = head.isKeepAlive
            let names = Self.certificateNames(context)
            let service = self.service
            let method = head.method.rawValue, path = String(head.uri.split(separator: "?", maxSplits: 1).first ?? "")
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            // The message carries key material: out of the connection's buffer at once.
            let message = SecretBytes(wiping: &request)
            pool.runIfActive(eventLoop: context.eventLoop) {
                service.handle(method: method, path: path, certificateNames: names, body: message)
            }.whenComplete { result in
                let (handler, context) = loopBound.value
                let answer = (try? result.get()) ?? PeerService.Answer(status: 500, body: Array("{\"__type\":\"KMSInternalException\"}".utf8))
                handler.write(context: context, answer, keepAlive: keepAlive)
            }
        }
    }

    private func write(context: ChannelHandlerContext, _ answer: PeerService.Answer, keepAlive: Bool) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(answer.body.count))
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: answer.status), headers: headers))), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: answer.body.count)
        buffer.writeBytes(answer.body)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        let channel = context.channel
        context.writeAndFlushPromise(wrapOutboundOut(.end(nil))).futureResult.whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
        connectionGuard.answerSent()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
    }
}
