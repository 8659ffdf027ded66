import Foundation
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import TesseraIssuer

/// Bounds on every connection, so no client can hold the server's sockets or descriptors (issue 18, item 6).
/// Defaults and reasons: `docs/configuration.md`, "Connections".
public struct ConnectionLimits: Sendable, Equatable {
    /// A request head must be complete within this of its first byte (or of the connection opening).
    public var headerTimeout: Duration = .seconds(10)
    /// A request body must be complete within this of its head.
    public var requestTimeout: Duration = .seconds(30)
    /// A kept-alive connection with no request in progress is closed after this.
    public var idleTimeout: Duration = .seconds(60)
    /// Connections served at once; beyond it the server stops accepting until one closes (the kernel's
    /// backlog holds the rest). Also capped below the process's descriptor limit at start.
    public var maximumConnections = 4_096

    public init() {}
}

/// Hummingbird's HTTP/1.1 channel with two guards around the decoder: the first byte of a request starts its
/// header clock, and each request head is checked for what RFC 9112 requires before any route sees it.
struct GuardedHTTP1Channel: HTTPChannelHandler {
    typealias Value = NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>

    let responder: HTTPChannelHandler.Responder
    let limits: ConnectionLimits

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let requestGuard = RequestGuard(limits: limits)
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(FirstByteWatcher(requestGuard))
            var decoderLimits = NIOHTTPDecoderLimitConfiguration()
            decoderLimits.maxHeaderFieldSize = 16 * 1024
            decoderLimits.maxHeaderListSize = 64 * 1024
            decoderLimits.maxHeaderFieldCount = 100
            try pipeline.configureHTTPServerPipeline(
                withPipeliningAssistance: true, withErrorHandling: false, withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(), withDecoderLimitConfiguration: decoderLimits)
            try pipeline.addHandler(requestGuard)
            try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: limits.idleTimeout, logger: logger))
            return try NIOAsyncChannel(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
        }
    }

    func handle(value asyncChannel: Value, logger: Logger) async {
        await handleHTTP(asyncChannel: asyncChannel, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with Tessera's connection limits and request-framing checks.
    static func guardedHTTP1(_ limits: ConnectionLimits) -> HTTPServerBuilder {
        .init { responder in GuardedHTTP1Channel(responder: responder, limits: limits) }
    }
}

/// Sits before the HTTP decoder and tells the guard when bytes arrive, so a head sent one byte at a time
/// (slowloris) is timed from its first byte, not from its last.
final class FirstByteWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let requestGuard: RequestGuard

    init(_ requestGuard: RequestGuard) { self.requestGuard = requestGuard }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        requestGuard.bytesArrived(context.eventLoop)
        context.fireChannelRead(data)
    }
}

/// After the decoder: times each request's head and body, and refuses heads whose framing RFC 9112 forbids
/// (a missing or repeated `Host`, a transfer coding other than chunked) with the status it names, then closes.
final class RequestGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let limits: ConnectionLimits
    private var context: ChannelHandlerContext?
    /// When the current head or body must be complete; nil while nothing is being timed.
    private var deadline: NIODeadline?
    /// The one timer: it fires at or before `deadline`, and then closes the connection or sets itself again
    /// for the deadline as it stands. Arming and disarming per request only write `deadline` (a timer
    /// scheduled and cancelled twice per request cost a few percent of a `/healthz` answer).
    private var timer: Scheduled<Void>?
    private var timerAt: NIODeadline?
    /// Between a request's head and its end.
    private var readingBody = false
    private var outstandingResponses = 0
    private var refusing = false

    init(limits: ConnectionLimits) { self.limits = limits }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // A connection that sends nothing at all is held no longer than a slow head.
        if context.channel.isActive { arm(limits.headerTimeout, on: context.eventLoop) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopTimer()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if deadline == nil { arm(limits.headerTimeout, on: context.eventLoop) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopTimer()
        context.fireChannelInactive()
    }

    /// The first bytes of a new request: its head must be complete within the header timeout.
    func bytesArrived(_ eventLoop: any EventLoop) {
        if !readingBody, deadline == nil { arm(limits.headerTimeout, on: eventLoop) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refusing else { return }  // the rest of a refused request
        switch unwrapInboundIn(data) {
        case .head(let head):
            if let (status, reason) = Self.framingProblem(head) {
                refuse(context, status, reason)
                return
            }
            readingBody = true
            outstandingResponses += 1
            disarm()
            arm(limits.requestTimeout, on: context.eventLoop)
        case .body:
            break
        case .end:
            readingBody = false
            // Handling time is the server's own; the next head's clock starts with its first byte.
            disarm()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { outstandingResponses = max(0, outstandingResponses - 1) }
        context.write(data, promise: promise)
    }

    /// What RFC 9112 makes a bad request, as a status and a reason; nil for a well-framed head.
    static func framingProblem(_ head: HTTPRequestHead) -> (HTTPResponseStatus, String)? {
        // RFC 9112 §3.2: a server MUST respond 400 to an HTTP/1.1 request without Host, or with more than one.
        let hosts = head.headers["Host"].count
        let http11 = head.version.major > 1 || (head.version.major == 1 && head.version.minor >= 1)
        if http11 ? hosts != 1 : hosts > 1 {
            return (.badRequest, hosts == 0 ? "an HTTP/1.1 request needs a Host header" : "more than one Host header")
        }
        let codings = head.headers["Transfer-Encoding"].flatMap { $0.split(separator: ",") }.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        }
        guard !codings.isEmpty else { return nil }
        // RFC 9112 §6.1: a transfer coding the server does not understand SHOULD get 501.
        if let unknown = codings.first(where: { $0 != "chunked" }) {
            return (.notImplemented, "transfer coding \(unknown.prefix(32)) is not supported; only chunked is")
        }
        // RFC 9112 §6.1, §6.3: chunked once and last; an HTTP/1.0 message with Transfer-Encoding is faulty.
        if codings.count > 1 || !http11 { return (.badRequest, "the request's Transfer-Encoding is not valid framing") }
        return nil
    }

    /// Answers a refused head (when no earlier response is still owed on this connection) and closes.
    private func refuse(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ reason: String) {
        refusing = true
        disarm()
        guard outstandingResponses == 0 else {
            context.close(promise: nil)
            return
        }
        let body = JSONObject(["error": .string("invalid_request"), "error_description": .string(reason)]).jsonString
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in bound.value.close(promise: nil) }
    }

    private func arm(_ timeout: Duration, on eventLoop: any EventLoop) {
        let nanoseconds = timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
        let at = NIODeadline.now() + .nanoseconds(nanoseconds)
        deadline = at
        if let timerAt, timerAt <= at { return }  // the timer fires first and sets itself again for `at`
        schedule(at, on: eventLoop)
    }

    private func schedule(_ at: NIODeadline, on eventLoop: any EventLoop) {
        timer?.cancel()
        timerAt = at
        timer = eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: at) { [self] in
            (timer, timerAt) = (nil, nil)
            guard let deadline else { return }  // nothing timed now; the next arm sets a timer
            if deadline <= .now() {
                // Too slow: a head or body that does not arrive in time. Nothing has been answered for it; close.
                self.deadline = nil
                context?.close(promise: nil)
            } else {
                schedule(deadline, on: eventLoop)
            }
        }
    }

    private func disarm() { deadline = nil }

    /// Stops the timer itself (the handler leaves the pipeline).
    private func stopTimer() {
        deadline = nil
        timer?.cancel()
        (timer, timerAt) = (nil, nil)
    }
}
