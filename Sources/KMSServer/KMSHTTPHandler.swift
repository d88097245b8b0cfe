import AWSSigV4
import Foundation
import KMSEngine
import KMSFSCrypto
import KMSWire
import NIOCore
import NIOHTTP1
import NIOPosix

/// One HTTP connection of kmsd: collects a request, authenticates it, runs it, answers.
///
/// Cryptographic and read-only operations run on the event loop (microseconds, memory only);
/// operations that change the store (and so wait for an fsync) run on the blocking pool so they
/// never stall the other connections of the loop.
final class KMSHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        case receiving(HTTPRequestHead, ByteBuffer)
        /// The body was too large and has been answered with 413: the rest of it is read and dropped
        /// (so that the client can read the answer) up to a bound, then the connection is closed.
        case discarding(remaining: Int)
    }

    private var state = State.idle
    /// A request is being answered: the idle timeout is for silent clients, not for slow answers
    /// (a store write waiting on a stalled disk must not cost the client its connection).
    private var answering = false
    private let service: KMSProtocol
    private let query: QueryProtocol
    private let endpoint: Endpoint
    private let authenticator: RequestAuthenticator
    private let blockingPool: NIOThreadPool
    /// Key generation's own pool (see ``KMSOperation/slow``).
    private let slowPool: NIOThreadPool
    /// Calls that wait on a custom key store (a token, a proxy): their own pool.
    private let externalPool: NIOThreadPool
    private let maximumBodyBytes: Int
    private let serveTestReset: Bool
    /// This connection's guard, told directly when a request is in and when its answer is out
    /// (an outbound event through the pipeline cost two traversals per request).
    private let connectionGuard: ConnectionGuard

    init(service: KMSProtocol, query: QueryProtocol, endpoint: Endpoint, authenticator: RequestAuthenticator,
         blockingPool: NIOThreadPool, slowPool: NIOThreadPool, externalPool: NIOThreadPool, maximumBodyBytes: Int, serveTestReset: Bool = false,
         connectionGuard: ConnectionGuard) {
        self.slowPool = slowPool
        self.externalPool = externalPool
        self.connectionGuard = connectionGuard
        self.serveTestReset = serveTestReset
        self.service = service
        self.query = query
        self.endpoint = endpoint
        self.authenticator = authenticator
        self.blockingPool = blockingPool
        self.maximumBodyBytes = maximumBodyBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case let (.head(head), _):
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > maximumBodyBytes {
                state = .discarding(remaining: Self.discardLimit)
                respondTooLarge(context: context)
                return
            }
            state = .receiving(head, context.channel.allocator.buffer(capacity: 1024))
        case (.body(var chunk), .receiving(let head, var body)):
            guard body.readableBytes + chunk.readableBytes <= maximumBodyBytes else {
                state = .discarding(remaining: Self.discardLimit)
                respondTooLarge(context: context)
                return
            }
            body.writeBuffer(&chunk)
            state = .receiving(head, body)
        case (.end, .receiving(let head, let body)):
            state = .idle
            answering = true
            connectionGuard.requestReceived()
            handle(context: context, head: head, body: body)
        case (.body(let chunk), .discarding(let remaining)):
            if chunk.readableBytes >= remaining {
                context.close(promise: nil)
            } else {
                state = .discarding(remaining: remaining - chunk.readableBytes)
            }
        case (.end, .discarding):
            context.close(promise: nil)
        case (.body, .idle), (.end, .idle):
            break
        }
    }

    private func handle(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer) {
        let requestID = RequestID.make()
        let keepAlive = head.isKeepAlive
        // A browser page could POST here across origins; a test harness sends no Origin.
        if serveTestReset, head.method == .POST, head.uri == "/moto-api/reset", !head.headers.contains(name: "origin") {
            let engine = service.engine
            return run(context: context, placement: .writes, requestID: requestID, keepAlive: keepAlive) {
                do {
                    try engine.removeAllKeys()
                    return (200, Array("{}".utf8), KMSProtocol.contentType)
                } catch {
                    return (500, KMSProtocol.errorResponse(WireError(type: .internalError, message: "reset failed", status: 500)).body,
                            KMSProtocol.contentType)
                }
            }
        }
        guard head.method == .POST, head.uri == "/" || head.uri.hasPrefix("/?") else {
            let error = WireError(type: .unknownOperation, message: "kmsd takes POST / with X-Amz-Target", status: 404)
            return write(context: context, response: KMSProtocol.errorResponse(error), requestID: requestID, keepAlive: keepAlive)
        }
        let bytes = Array(body.readableBytesView)
        let signed = SigV4Request(method: "POST", path: "/", headers: head.headers.map { ($0.name, $0.value) }, body: bytes)
        let connection = endpoint.connection(remote: context.channel.remoteAddress)
        let target = head.headers.first(name: "x-amz-target")
        if target == nil, head.headers.first(name: "content-type")?.lowercased().hasPrefix("application/x-www-form-urlencoded") == true {
            return handleQuery(context: context, signed: signed, body: bytes, connection: connection, requestID: requestID, keepAlive: keepAlive)
        }
        let operation = target.map { String($0.dropFirst(KMSProtocol.targetPrefix.count)) } ?? ""
        let caller: Caller
        do {
            caller = try authenticator.caller(for: signed, service: "kms", connection: connection, requestID: requestID)
        } catch {
            authenticator.audit(rejected: signed, operation: operation, requestID: requestID, error: error)
            let response = KMSProtocol.errorResponse(error)
            ServerMetrics.record(operation: operation, response: response, nanoseconds: 0)
            return write(context: context, response: response, requestID: requestID, keepAlive: keepAlive)
        }
        let service = self.service
        run(context: context, placement: KMSProtocol.placement(operation, body: bytes, caller: caller, engine: service.engine), requestID: requestID, keepAlive: keepAlive) {
            let start = DispatchTime.now().uptimeNanoseconds
            let response = service.handle(target: target, body: bytes, caller: caller)
            ServerMetrics.record(operation: operation, response: response, nanoseconds: DispatchTime.now().uptimeNanoseconds - start)
            return (response.status, response.body, KMSProtocol.contentType)
        }
    }

    /// IAM and STS: the query protocol, signed for the `iam` or `sts` service.
    private func handleQuery(context: ChannelHandlerContext, signed: SigV4Request, body: [UInt8], connection: Endpoint.Connection,
                             requestID: String, keepAlive: Bool) {
        guard let route = QueryProtocol.route(body: body) else {
            let response = QueryProtocol.errorResponse(type: .invalidAction, message: "kmsd serves no such IAM or STS action", requestID: requestID)
            return write(context: context, status: response.status, body: response.body, contentType: QueryProtocol.contentType,
                         requestID: requestID, keepAlive: keepAlive)
        }
        let caller: Caller
        do {
            caller = try authenticator.caller(for: signed, service: route.service, connection: connection, requestID: requestID)
        } catch {
            authenticator.audit(rejected: signed, operation: route.action, requestID: requestID, error: error)
            let response = QueryProtocol.errorResponse(type: error.type, message: error.message, service: route.service, requestID: requestID)
            return write(context: context, status: response.status, body: response.body, contentType: QueryProtocol.contentType,
                         requestID: requestID, keepAlive: keepAlive)
        }
        let query = self.query
        run(context: context, placement: route.writes ? .writes : .eventLoop, requestID: requestID, keepAlive: keepAlive) {
            let response = query.handle(body: body, caller: caller)
            return (response.status, response.body, QueryProtocol.contentType)
        }
    }

    /// Runs an authenticated request: on the event loop when it only reads memory, on the
    /// blocking pool when it writes the store (an fsync must not stall the loop's other connections).
    private func run(context: ChannelHandlerContext, placement: KMSProtocol.Placement, requestID: String, keepAlive: Bool,
                     _ work: @escaping @Sendable () -> (Int, [UInt8], String)) {
        let pool: NIOThreadPool
        switch placement {
        case .eventLoop:
            let (status, body, type) = work()
            return write(context: context, status: status, body: body, contentType: type, requestID: requestID, keepAlive: keepAlive)
        case .writes: pool = blockingPool
        case .slow: pool = slowPool
        case .external: pool = externalPool
        }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        pool.runIfActive(eventLoop: context.eventLoop, work).whenComplete { result in
            let (handler, context) = loopBound.value
            let (status, body, type) = (try? result.get())
                ?? (500, KMSProtocol.errorResponse(WireError(type: .internalError, message: "the server is shutting down", status: 500)).body,
                    KMSProtocol.contentType)
            handler.write(context: context, status: status, body: body, contentType: type, requestID: requestID, keepAlive: keepAlive)
        }
    }

    /// How much of an oversized body is drained after the 413 before the connection is cut.
    static let discardLimit = 16 << 20

    private func respondTooLarge(context: ChannelHandlerContext) {
        let error = WireError(type: .requestEntityTooLarge,
                              message: "The request body is larger than \(maximumBodyBytes) bytes", status: 413)
        write(context: context, response: KMSProtocol.errorResponse(error), requestID: RequestID.make(),
              keepAlive: false, closeAfter: false)
    }

    private func write(context: ChannelHandlerContext, response: KMSProtocol.Response, requestID: String, keepAlive: Bool,
                       closeAfter: Bool = true) {
        write(context: context, status: response.status, body: response.body, contentType: KMSProtocol.contentType,
              requestID: requestID, keepAlive: keepAlive, closeAfter: closeAfter)
    }

    private func write(context: ChannelHandlerContext, status: Int, body: [UInt8], contentType: String, requestID: String,
                       keepAlive: Bool, closeAfter: Bool = true) {
        answering = false
        connectionGuard.answerSent()
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.count))
        headers.add(name: "x-amzn-RequestId", value: requestID)
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: body.count)
        buffer.writeBytes(body)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        guard !keepAlive && closeAfter else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)  // no promise to allocate per answer
            return
        }
        let channel = context.channel
        context.writeAndFlushPromise(wrapOutboundOut(.end(nil))).futureResult.whenComplete { _ in channel.close(promise: nil) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            if !answering { context.close(promise: nil) }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

extension ChannelHandlerContext {
    func writeAndFlushPromise(_ data: NIOAny) -> EventLoopPromise<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        writeAndFlush(data, promise: promise)
        return promise
    }
}

/// Request IDs in UUID form (version 4), from OpenSSL's generator (seeded by the kernel).
///
/// Foundation's `UUID()` opened /dev/urandom on every call here (an open(2) per request, 4 % of
/// a request's time under load), and getrandom(2) still cost a system call per request; the
/// DRBG answers in user space.
enum RequestID {
    static func make() -> String {
        var bytes = (try? SecureRandom.bytes(count: 16)) ?? (0..<16).map { _ in UInt8.random(in: 0...255) }
        bytes[6] = bytes[6] & 0x0f | 0x40
        bytes[8] = bytes[8] & 0x3f | 0x80
        let digits = hex(bytes).utf8
        var text: [UInt8] = []
        text.reserveCapacity(36)
        for (index, digit) in digits.enumerated() {
            if index == 8 || index == 12 || index == 16 || index == 20 { text.append(UInt8(ascii: "-")) }
            text.append(digit)
        }
        return String(decoding: text, as: UTF8.self)
    }
}
