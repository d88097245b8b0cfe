import Foundation
import KMSKeyStores
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// kmsd's XKS proxy mode on the network: HTTP/1.1 (TLS unless the listener is loopback tcp://)
/// in front of an ``XKSProxyService``. Token calls run on a small thread pool, never on the loop.
public final class XKSProxyServer: Sendable {
    private let group: MultiThreadedEventLoopGroup
    private let pool: NIOThreadPool
    private let channel: any Channel
    public let boundAddress: String

    public init(service: XKSProxyService, listener: ServerConfiguration.Listener, idleTimeoutSeconds: Int64 = 30) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        var tls: NIOSSLContext?
        let host: String, port: Int
        switch listener {
        case let .tcp(h, p): (host, port) = (h, p)
        case let .tls(h, p, certificate, key): (host, port) = (h, p); tls = try KMSServer.tlsContext(certificate: certificate, key: key)
        case .unix: throw ServerError("the XKS proxy listens on tcp:// (loopback) or tls://")
        }
        let context = tls
        do {
            channel = try ServerBootstrap(group: group)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        if let context { try sync.addHandler(NIOSSLServerHandler(context: context)) }
                        try sync.addHandler(IdleStateHandler(readTimeout: .seconds(idleTimeoutSeconds)))
                        try sync.configureHTTPServerPipeline(withErrorHandling: true)
                        try sync.addHandler(XKSProxyHandler(service: service, pool: pool))
                    }
                }
                .bind(host: host, port: port).wait()
        } catch {
            try? pool.syncShutdownGracefully()
            try? group.syncShutdownGracefully()
            throw error
        }
        self.group = group
        self.pool = pool
        boundAddress = "\(tls == nil ? "http" : "https")://\(channel.localAddress?.ipAddress ?? host):\(channel.localAddress?.port ?? port)"
    }

    public func shutdown() {
        try? channel.close().wait()
        try? pool.syncShutdownGracefully()
        try? group.syncShutdownGracefully()
    }
}

/// One proxy connection: collects a request (at most 64 KiB: the spec's largest is under 20 KiB),
/// runs it on the pool, answers.
final class XKSProxyHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    static let maximumBody = 64 << 10

    private let service: XKSProxyService
    private let pool: NIOThreadPool
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false

    init(service: XKSProxyService, pool: NIOThreadPool) {
        self.service = service
        self.pool = pool
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(requestHead):
            head = requestHead
            body = []
            tooLarge = false
        case var .body(buffer):
            if body.count + buffer.readableBytes > Self.maximumBody { tooLarge = true; return }
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            guard let head else { return }
            self.head = nil
            let keepAlive = head.isKeepAlive
            if tooLarge {
                return write(context: context, status: 413, body: Array("{\"errorName\":\"ValidationException\"}".utf8), keepAlive: false)
            }
            let request = (head.method.rawValue, String(head.uri.split(separator: "?", maxSplits: 1).first ?? ""),
                           head.headers.map { ($0.name, $0.value) }, body)
            let service = self.service
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            pool.runIfActive(eventLoop: context.eventLoop) {
                service.handle(method: request.0, path: request.1, headers: request.2, body: request.3)
            }.whenComplete { result in
                let (handler, context) = loopBound.value
                let answer = (try? result.get()) ?? XKSProxyService.Answer(status: 500, body: XKSProtocol.errorBody(.internalError, "shutting down"))
                handler.write(context: context, status: answer.status, body: answer.body, keepAlive: keepAlive)
            }
        }
    }

    private func write(context: ChannelHandlerContext, status: Int, body: [UInt8], keepAlive: Bool) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: XKSProtocol.contentType)
        headers.add(name: "Content-Length", value: String(body.count))
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers))), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: body.count)
        buffer.writeBytes(body)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        let channel = context.channel
        context.writeAndFlushPromise(wrapOutboundOut(.end(nil))).futureResult.whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
    }
}
