import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import HTTPTypes
import TesseraJOSE

/// A JWKS endpoint on loopback whose answers a test scripts, counting every request.
final class JWKSEndpoint: @unchecked Sendable {
    enum Mode { case serve, fail500, garbage, huge, slow(Duration) }

    private let lock = NSLock()
    private var _keys: [SigningKey]
    private var _mode: Mode = .serve
    private var _requests = 0
    private var _conditionalRequests = 0
    var cacheControl = "max-age=300"
    var etag: String? = "\"v1\""
    var issuer = ""

    init(keys: [SigningKey]) { _keys = keys }

    var keys: [SigningKey] { get { lock.withLock { _keys } } set { lock.withLock { _keys = newValue } } }
    var mode: Mode { get { lock.withLock { _mode } } set { lock.withLock { _mode = newValue } } }
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
        try await app.test(.live) { client in
            let base = "http://127.0.0.1:\(client.port!)"
            self.issuer = base
            try await body(URL(string: base)!)
        }
    }
}
