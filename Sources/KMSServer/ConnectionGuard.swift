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
        var current: Int { open.load(ordering: .relaxed) }
    }

    private let count: Count
    private let deadline: TimeAmount
    private var admitted = false
    /// When the request now arriving sent its first byte; nil between requests.
    private var requestStart: NIODeadline?
    /// The timer, armed at most once per deadline period rather than once per request (which
    /// cost a schedule and a cancel on every call): when it fires it closes the connection if the
    /// request in progress is late, re-arms for it if it is not, and stays disarmed otherwise.
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
        if requestStart == nil && !answering {
            let now = NIODeadline.now()
            requestStart = now
            if clock == nil { arm(channel: context.channel, at: now + deadline) }
        }
        context.fireChannelRead(data)
    }

    /// The HTTP handler's word (same event loop, called directly): the request is in; its clock stops.
    func requestReceived() {
        requestStart = nil
        answering = true
    }

    /// The HTTP handler's word: the answer is out; the next byte starts the next request's clock.
    func answerSent() {
        answering = false
    }

    private func arm(channel: any Channel, at when: NIODeadline) {
        let bound = NIOLoopBound(self, eventLoop: channel.eventLoop)
        clock = channel.eventLoop.scheduleTask(deadline: when) { bound.value.expire(channel: channel) }
    }

    private func expire(channel: any Channel) {
        clock = nil
        guard let start = requestStart else { return }
        let due = start + deadline
        if due <= .now() {
            channel.close(promise: nil)
        } else {
            arm(channel: channel, at: due)
        }
    }
}
