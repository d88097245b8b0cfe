import NIOCore
import Synchronization

/// Keeps slow or numerous clients from holding the server.
///
/// - At most `limit` connections at once, over every listener: one more is closed as soon as it
///   is accepted (kmsd would otherwise run out of descriptors and stop answering everyone).
/// - A request must arrive whole — head and body — within `deadline` of its first byte: a client
///   that trickles a byte now and then (which keeps the idle timeout from firing) is closed. The
///   time kmsd takes to answer is not counted: ``KMSHTTPHandler`` says when a request is in and
///   when its answer is out.
///
/// Sits first in the pipeline (after TLS), on raw bytes.
final class ConnectionGuard: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Sent outbound by the HTTP handler: the request is in (stop its clock), or answered.
    enum Event { case requestReceived, answerSent }

    /// The open connections of one server.
    final class Count: Sendable {
        let limit: Int
        private let open = Atomic<Int>(0)
        init(limit: Int) { self.limit = limit }
        /// Counts one more connection; false (and not counted) past the limit.
        func admit() -> Bool {
            if open.add(1, ordering: .relaxed).newValue <= limit { return true }
            open.subtract(1, ordering: .relaxed)
            return false
        }
        func release() { open.subtract(1, ordering: .relaxed) }
    }

    private let count: Count
    private let deadline: TimeAmount
    private var admitted = false
    private var clock: Scheduled<Void>?
    /// Between a request's end and its answer: bytes then belong to a pipelined next request,
    /// whose clock starts when the answer is out.
    private var answering = false

    init(count: Count, deadline: TimeAmount) {
        self.count = count
        self.deadline = deadline
    }

    func channelActive(context: ChannelHandlerContext) {
        admitted = count.admit()
        guard admitted else {
            context.close(promise: nil)
            return
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        clock?.cancel()
        clock = nil
        if admitted {
            admitted = false
            count.release()
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard admitted else { return }
        if clock == nil && !answering { startClock(context: context) }
        context.fireChannelRead(data)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let event = event as? Event else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        switch event {
        case .requestReceived:
            clock?.cancel()
            clock = nil
            answering = true
        case .answerSent:
            answering = false
        }
        promise?.succeed(())
    }

    private func startClock(context: ChannelHandlerContext) {
        let channel = context.channel
        clock = context.eventLoop.scheduleTask(in: deadline) { channel.close(promise: nil) }
    }
}
