import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import TesseraJOSE
import TesseraTestSupport

/// A JWKS endpoint on loopback whose answers a test scripts, counting every request.
final class JWKSEndpoint: @unchecked Sendable {
    enum Mode {
        case serve, fail500, garbage, huge
        case slow(Duration)
    }

    private let lock = NSLock()
    private var _keys: [SigningKey]
    private var _mode: Mode = .serve
    private var _requests = 0
    private var _conditionalRequests = 0
    var cacheControl = "max-age=300"
    var etag: String? = "\"v1\""
    var issuer = ""

    init(keys: [SigningKey]) { _keys = keys }

    var keys: [SigningKey] {
        get { lock.withLock { _keys } }
        set { lock.withLock { _keys = newValue } }
    }
    var mode: Mode {
        get { lock.withLock { _mode } }
        set { lock.withLock { _mode = newValue } }
    }
    var requests: Int { lock.withLock { _requests } }
    var conditionalRequests: Int { lock.withLock { _conditionalRequests } }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/jwks.json") { request, _ -> Response in
            let (mode, keys, conditional) = self.lock.withLock { () -> (Mode, [SigningKey], Bool) in
                self._requests += 1
                let conditional = request.headers[.ifNoneMatch] != nil && request.headers[.ifNoneMatch] == self.etag
                if conditional { self._conditionalRequests += 1 }
                return (self._mode, self._keys, conditional)
            }
            switch mode {
            case .fail500: return Response(status: .internalServerError)
            case .garbage: return Self.response(#"{"keys":"#, headers: [:])
            case .huge: return Self.response(#"{"keys":[],"pad":""# + String(repeating: "x", count: 400_000) + #""}"#, headers: [:])
            case .slow(let delay): try await Task.sleep(for: delay)
            case .serve: break
            }
            var headers: [String: String] = ["Cache-Control": self.cacheControl]
            if let etag = self.etag { headers["ETag"] = etag }
            if conditional { return Self.response(nil, status: .notModified, headers: headers) }
            return Self.response(try JWKSet(publicKeysOf: keys).jsonString, headers: headers)
        }
        router.get("/.well-known/oauth-authorization-server") { _, context -> Response in
            Self.response(#"{"issuer":"\#(self.issuer)","jwks_uri":"\#(self.issuer)/jwks.json"}"#, headers: [:])
        }
        return router
    }

    static func response(_ body: String?, status: HTTPResponse.Status = .ok, headers: [String: String]) -> Response {
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        for (name, value) in headers { fields[HTTPField.Name(name)!] = value }
        return Response(status: status, headers: fields, body: body.map { .init(byteBuffer: ByteBuffer(string: $0)) } ?? .init())
    }

    /// Runs the endpoint on a loopback port for the duration of `body`.
    func run(_ body: @escaping @Sendable (URL) async throws -> Void) async throws {
        let app = Application(router: router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await onServerThreads {
            try await app.test(.live) { client in
                let base = "http://127.0.0.1:\(client.port!)"
                self.issuer = base
                try await body(URL(string: base)!)
            }
        }
    }
}

/// A loopback HTTP "server" that never finishes an answer: `silent` accepts and reads the request and
/// says nothing; `drip` sends a 200 head and then one body byte every 50 ms. Runs on threads of its own
/// (plain sockets), so it keeps stalling whatever Swift concurrency's threads are doing.
final class StallingServer: @unchecked Sendable {
    enum Mode: Sendable { case silent, drip }

    let port: Int
    private let listener: Int32
    private let lock = NSLock()
    private var connections: [Int32] = []
    private var stopped = false

    init(_ mode: Mode) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        guard listener >= 0, bound, listen(listener, 16) == 0 else { throw TestSupportError("cannot listen on loopback") }
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in
            while true {
                let connection = accept(listener, nil, nil)
                guard connection >= 0 else { return }
                let keep = lock.withLock { () -> Bool in
                    if !stopped { connections.append(connection) }
                    return !stopped
                }
                guard keep else {
                    close(connection)
                    return
                }
                Thread.detachNewThread { Self.serve(connection, mode) }
            }
        }
    }

    var url: URL { URL(string: "http://127.0.0.1:\(port)/jwks.json")! }

    /// Each connection's thread owns it and closes it when `stop()` has shut it down.
    private static func serve(_ connection: Int32, _ mode: Mode) {
        defer { close(connection) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        guard read(connection, &buffer, buffer.count) > 0 else { return }
        switch mode {
        case .silent:
            while read(connection, &buffer, buffer.count) > 0 {}
        case .drip:
            // send with MSG_NOSIGNAL: a peer that hung up must not raise SIGPIPE in the test process.
            let head = Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{".utf8)
            guard send(connection, head, head.count, Int32(MSG_NOSIGNAL)) == head.count else { return }
            while send(connection, " ", 1, Int32(MSG_NOSIGNAL)) == 1 { usleep(50_000) }
        }
    }

    /// Closes the listener and shuts every connection down (its thread then ends and closes it).
    func stop() {
        let open = lock.withLock { () -> [Int32] in
            stopped = true
            defer { connections = [] }
            return connections
        }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        for connection in open { shutdown(connection, Int32(SHUT_RDWR)) }
    }
}
