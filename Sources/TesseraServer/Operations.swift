import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import TesseraIssuer

// The service's operational pieces besides the routes: the request id header, requests in flight, the
// refresh-token store as a lifecycle service, and the `/metrics` listener.

let requestIDHeader = HTTPField.Name("X-Request-Id")!

/// Requests being answered right now (what a graceful shutdown waits for, and says it did).
public final class RequestActivity: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    private var finished = 0
    public init() {}
    func begin() { lock.withLock { count += 1 } }
    func end() {
        lock.withLock {
            count -= 1
            finished += 1
        }
    }
    public var inFlight: Int { lock.withLock { count } }
    /// Requests answered since the server started.
    public var answered: Int { lock.withLock { finished } }
}

/// The backend as a service: its background work (following a database's changes) runs until graceful
/// shutdown; then, after the HTTP server has finished its requests, the backend is closed (the file store
/// waits for queued writes, stops its writer and releases its lock; a database pool closes).
struct BackendService: Service {
    let service: TokenService

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            if let background = service.backend.background { group.addTask { try? await background() } }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        await service.close()
    }
}

/// `/metrics` on its own listener (`--metrics-address`), so the main port never serves it.
func metricsApplication(_ service: TokenService, address: ListenAddress, logger: Logger) -> some ApplicationProtocol {
    let router = Router()
    router.get("/metrics") { _, _ -> Response in
        let text = await service.metrics.exposition(service, readiness: await Readiness(service))
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }
    // The same connection guard as the main listener: timeouts and a cap, so a slow client cannot hold it.
    let limits = service.configuration.connections
    return Application(
        router: router, server: .guardedHTTP1(limits),
        configuration: ApplicationConfiguration(
            address: .hostname(address.host, port: address.port), serverName: "tessera",
            availableConnectionsDelegate: MaximumAvailableConnections(limits.maximumConnections)),
        onServerRunning: { channel in
            logger.notice("metrics listening", metadata: ["address": .string("\(address.host):\(channel.localAddress?.port ?? address.port)")])
        }, logger: logger)
}

/// sd_notify(3) without libsystemd: under a systemd unit with `Type=notify`, `NOTIFY_SOCKET` names a Unix
/// datagram socket (a path, or `@` for the abstract namespace) that takes `READY=1` once the service listens
/// and `STOPPING=1` when it begins to shut down. Elsewhere it does nothing. Returns whether it sent.
@discardableResult
public func notifySystemd(_ state: String, environment: [String: String]? = nil) -> Bool {
    guard let path = (environment ?? ProcessInfo.processInfo.environment)["NOTIFY_SOCKET"], !path.isEmpty, path.utf8.count < 108 else { return false }
    #if canImport(Glibc)
    let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    #else
    let fd = socket(AF_UNIX, SOCK_DGRAM, 0)
    #endif
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    var bytes = Array(path.utf8)
    if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }  // abstract namespace
    withUnsafeMutableBytes(of: &address.sun_path) { buffer in
        for (index, byte) in bytes.enumerated() { buffer[index] = byte }
    }
    let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes.first == 0 ? 0 : 1))
    let message = Array(state.utf8)
    let sent = withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, message, message.count, 0, $0, length) }
    }
    return sent == message.count
}
