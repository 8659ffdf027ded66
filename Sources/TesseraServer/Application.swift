import Foundation
import HTTPTypes
public import Hummingbird
import HummingbirdCore
public import Logging
public import NIOCore
import NIOPosix
import ServiceLifecycle
import TesseraIssuer
import TesseraJOSE

/// The HTTP application `tessera serve` runs (and tests drive): the authorization endpoint with its
/// sign-in and consent pages, the token, revocation and introspection endpoints, JWKS and RFC 8414
/// metadata, and a health check.
/// `onListening` runs once the port is bound, with the port (the bound one when the configuration says 0).
public func buildApplication(
    _ service: TokenService, logger: Logger = Logger(label: "tessera"),
    onListening: @escaping @Sendable (_ port: Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let router = Router(context: TesseraRequestContext.self)
    router.add(middleware: RequestLogMiddleware(activity: service.activity))
    // HTTP requests and durations by route and status, through swift-metrics (bootstrapped by `tessera serve`).
    router.add(middleware: MetricsMiddleware())
    let metrics = service.metrics
    let limit = service.configuration.maximumBodySize
    let clients: @Sendable () throws -> ClientRegistry = { [clients = service.clients] in clients.current() }

    // Every route is recorded with its method, so a known path asked with another method gets 405 and `Allow`.
    var allowed: [String: [HTTPRequest.Method]] = [:]
    func route(_ method: HTTPRequest.Method, _ path: String, _ handler: @escaping @Sendable (Request, TesseraRequestContext) async throws -> Response)
    {
        allowed[path, default: []].append(method)
        router.on(RouterPath(path), method: method, use: handler)
    }

    route(.post, "/token") { request, context -> Response in
        await oauthResponse(request, limit: limit, context: context, throttle: service.throttle, metrics: metrics, endpoint: "token") { form in
            .json(try await service.endpoint.handle(form).json)
        }
    }
    let revocation = RevocationEndpoint(clients: clients, store: service.refreshTokens)
    route(.post, "/revoke") { request, context -> Response in
        await oauthResponse(request, limit: limit, context: context, throttle: service.throttle, metrics: metrics, endpoint: "revoke") { form in
            try await revocation.handle(form)
            return .empty
        }
    }
    let introspection = IntrospectionEndpoint(
        clients: clients, store: service.refreshTokens, keys: service.keys,
        issuer: service.configuration.issuerURL, users: service.users)
    route(.post, "/introspect") { request, context -> Response in
        await oauthResponse(request, limit: limit, context: context, throttle: service.throttle, metrics: metrics, endpoint: "introspect") { form in
            .json(try await introspection.handle(form))
        }
    }
    route(.get, "/.well-known/jwks.json") { request, _ -> Response in
        let snapshot = service.keys.current
        var headers: HTTPFields = [.contentType: "application/jwk-set+json", .cacheControl: snapshot.cacheControl, .eTag: snapshot.etag]
        if let match = request.headers[.ifNoneMatch],
            match.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == snapshot.etag })
        {
            headers[.contentType] = nil
            metrics.jwksRequest(notModified: true)
            return Response(status: .notModified, headers: headers)
        }
        metrics.jwksRequest(notModified: false)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: snapshot.jwksJSON)))
    }
    // One document at both addresses (RFC 8414 §3 and OpenID Connect Discovery §4), so they never disagree.
    for path in ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"] {
        route(.get, path) { _, _ -> Response in
            let body = metadata(service).jsonString
            return Response(
                status: .ok, headers: [.contentType: "application/json", .cacheControl: "public, max-age=300"],
                body: .init(byteBuffer: ByteBuffer(string: body)))
        }
    }
    for method in [HTTPRequest.Method.get, .post] {
        route(method, "/userinfo") { request, context in
            await userInfoResponse(request, endpoint: service.userInfo, limit: limit, logger: context.logger)
        }
    }
    // Liveness: the process answers (`/healthz` is its older name), 200 whatever its store says — restarting
    // an instance would not bring a database back — but the body says when the store cannot be used.
    // Readiness (`Readiness`) is what takes an instance out of a load balancer.
    for path in ["/health/live", "/healthz"] {
        route(.get, path) { _, _ in
            var body = JSONObject(["status": .string("live")])
            if await service.backend.problem() != nil { body["store"] = .string("unavailable") }
            return jsonResponse(.ok, body)
        }
    }
    route(.get, "/health/ready") { _, _ in
        let readiness = await Readiness(service)
        return jsonResponse(readiness.ready ? .ok : .serviceUnavailable, readiness.json)
    }

    let pages = AuthorizePages(service: service)
    route(.get, "/authorize") { request, _ in await pages.authorizeGET(request) }
    route(.post, "/authorize") { request, _ in await pages.authorizePOST(request, limit: limit) }
    route(.post, "/authorize/sign-in") { request, context in await pages.signIn(request, context: context, limit: limit) }
    route(.post, "/authorize/consent") { request, _ in await pages.consent(request, limit: limit) }
    route(.get, "/logout") { request, _ in await pages.logoutGET(request, flow: service.logout) }
    route(.post, "/logout") { request, _ in await pages.logoutPOST(request, flow: service.logout, limit: limit) }
    // Added last, so it wraps only what matched no route (Hummingbird applies middleware to later routes and
    // to its not-found responder).
    router.add(middleware: MethodNotAllowedMiddleware(allowed: allowed))

    let limits = service.configuration.connections
    let configuration = ApplicationConfiguration(
        address: .hostname(service.configuration.host, port: service.configuration.port),
        serverName: "tessera",
        availableConnectionsDelegate: MaximumAvailableConnections(limits.maximumConnections))
    // Background work runs as services of the application, started with it and stopped on graceful shutdown
    // in reverse order, after the HTTP server has finished its requests: the metrics listener, the key-ring
    // watcher, and last the refresh-token store (flushed and closed).
    var services: [any Service] = [BackendService(service: service), KeyRingWatcher(keys: service.keys)]
    if let address = service.configuration.metricsAddress { services.append(metricsApplication(service, address: address, logger: logger)) }
    return Application(
        router: router, server: .guardedHTTP1(limits), configuration: configuration, services: services,
        onServerRunning: { channel in await onListening(channel.localAddress?.port ?? service.configuration.port) },
        logger: logger)
}

/// RFC 8414 §2 metadata and OpenID Connect Discovery §3 provider metadata in one document: what a
/// client library needs to find and use the endpoints.
func metadata(_ service: TokenService) -> JSONObject {
    let issuer = service.configuration.issuerURL
    let scopes = Set(service.clients.current().clients.flatMap(\.scopes)).union(["openid"]).sorted()
    // RS256 always (Core §15.1), and every other algorithm a key is active for that ID tokens may use.
    let active = Set(service.keys.current.signers.keys)
    let idTokenAlgorithms = ["RS256"] + Client.idTokenAlgorithms.map(\.name).filter { $0 != "RS256" && active.contains($0) }
    let claims = ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "amr"] + StandardClaims.byScope.flatMap(\.claims)
    let authMethods: JSONValue = .array([.string("client_secret_basic"), .string("client_secret_post"), .string("none")])
    return JSONObject([
        "issuer": .string(issuer),
        "authorization_endpoint": .string(issuer + "/authorize"),
        "token_endpoint": .string(issuer + "/token"),
        "jwks_uri": .string(issuer + "/.well-known/jwks.json"),
        "revocation_endpoint": .string(issuer + "/revoke"),
        "introspection_endpoint": .string(issuer + "/introspect"),
        "grant_types_supported": .array(["authorization_code", "client_credentials", "refresh_token", "password"].map(JSONValue.string)),
        // RFC 9700 §2.1.2: no implicit grant, so "code" is the only response type.
        "response_types_supported": .array([.string("code")]),
        "response_modes_supported": .array([.string("query")]),
        // S256 only: plain is accepted solely from clients registered for it (RFC 9700 §2.1.1).
        "code_challenge_methods_supported": .array([.string("S256")]),
        "authorization_response_iss_parameter_supported": .bool(true),
        "token_endpoint_auth_methods_supported": authMethods,
        "revocation_endpoint_auth_methods_supported": authMethods,
        "introspection_endpoint_auth_methods_supported": .array([.string("client_secret_basic"), .string("client_secret_post")]),
        "scopes_supported": .array(scopes.map(JSONValue.string)),
        // OpenID Connect Discovery §3.
        "userinfo_endpoint": .string(issuer + "/userinfo"),
        "end_session_endpoint": .string(issuer + "/logout"),
        "subject_types_supported": .array([.string("public")]),
        "id_token_signing_alg_values_supported": .array(idTokenAlgorithms.map(JSONValue.string)),
        "claims_supported": .array(claims.map(JSONValue.string)),
        "claims_parameter_supported": .bool(true),
        "request_parameter_supported": .bool(false),
        "request_uri_parameter_supported": .bool(false),
        "prompt_values_supported": .array(["none", "login", "consent", "select_account"].map(JSONValue.string)),
        "claim_types_supported": .array([.string("normal")]),
    ])
}

enum OAuthBody {
    case json(JSONObject)
    case empty
}

/// Parses an `application/x-www-form-urlencoded` body (RFC 6749 §3.2), runs `body`, and answers with JSON
/// and `Cache-Control: no-store` (RFC 6749 §5.1), or the RFC 6749 §5.2 error.
func oauthResponse(
    _ request: Request, limit: Int, context: TesseraRequestContext, throttle: any FailureCounting, metrics: ServerMetrics, endpoint: String,
    _ body: (TokenRequest) async throws -> OAuthBody
) async -> Response {
    var clientKeys: [FailureThrottle.Key] = []
    var userKeys: [FailureThrottle.Key] = []
    do {
        let form = try await formRequest(request, limit: limit)
        // Throttle keys: the client the request claims to be and the user it signs in, each from this address.
        let address = context.remoteAddress?.ipAddress
        let client = ClientAuthenticator.claimedClientID(basic: form.basicCredentials, clientID: form["client_id"])
        clientKeys = FailureThrottle.client(client ?? "", address: address)
        if form["grant_type"] == "password", let username = form["username"] { userKeys = FailureThrottle.user(username, address: address) }
        let keys = clientKeys + userKeys
        let check = try await throttle.check(keys)
        if let wait = check.retryAfter {
            metrics.throttled(endpoint: endpoint)
            context.logger.notice(
                "throttled after repeated failures", metadata: ["kinds": .string(Set(keys.map { "\($0.kind)" }).sorted().joined(separator: ","))])
            let object = JSONObject([
                "error": .string("invalid_request"), "error_description": .string("too many failed attempts; retry after \(wait) s"),
            ])
            return jsonResponse(.tooManyRequests, object, headers: [.retryAfter: String(wait)])
        }
        let result = try await body(form)
        try? await throttle.clear(after: check)  // the answer stands; an uncleared count only expires later
        switch result {
        case .json(let object): return jsonResponse(.ok, object)
        case .empty: return Response(status: .ok, headers: [.cacheControl: "no-store", pragma: "no-cache"])
        }
    } catch let error as OAuthError {
        context.logger.info("oauth error", metadata: ["error": .string(error.code.rawValue), "detail": .string(error.logMessage)])
        // A wrong secret counts against the client; a wrong password against the user, not the client.
        if error.code == .invalidClient {
            metrics.clientAuthenticationFailed(endpoint: endpoint)
            try? await throttle.recordFailure(clientKeys)
        } else if error.code == .invalidGrant, !userKeys.isEmpty {
            try? await throttle.recordFailure(userKeys)
        }
        return errorResponse(error, request: request)
    } catch let error as BodyTooLarge {
        return errorResponse(
            OAuthError(.invalidRequest, "the request body is larger than \(error.limit) bytes"), request: request, status: .contentTooLarge)
    } catch {
        context.logger.error("unexpected error", metadata: ["error": .string("\(type(of: error))")])
        return errorResponse(OAuthError(.temporarilyUnavailable, "the request could not be processed"), request: request)
    }
}

/// The request context: Hummingbird's core storage and the peer's address (for throttling by address).
public struct TesseraRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}

struct BodyTooLarge: Error { let limit: Int }

/// RFC 6749 §5.1 asks for `Pragma: no-cache` beside `Cache-Control: no-store` (for HTTP/1.0 caches).
let pragma = HTTPField.Name("Pragma")!

func formRequest(_ request: Request, limit: Int) async throws -> TokenRequest {
    guard request.headers[.contentType].map(isFormContentType) == true else {
        throw OAuthError(.invalidRequest, "the body must be application/x-www-form-urlencoded (RFC 6749 §3.2)")
    }
    guard request.headers[values: .authorization].count <= 1 else {
        throw OAuthError(.invalidRequest, "more than one Authorization header")
    }
    if let length = request.headers[.contentLength].flatMap(Int.init), length > limit { throw BodyTooLarge(limit: limit) }
    var request = request
    let buffer: ByteBuffer
    do { buffer = try await request.collectBody(upTo: limit) } catch { throw BodyTooLarge(limit: limit) }
    return TokenRequest(parameters: try TokenRequest.parseForm(String(buffer: buffer)), authorization: request.headers[.authorization])
}

/// Whether a `Content-Type` is `application/x-www-form-urlencoded`, in any case, parameters and surrounding
/// blanks ignored (compared as bytes: a hot path).
func isFormContentType(_ value: String) -> Bool {
    let bytes = value.utf8
    let end = bytes.firstIndex(of: UInt8(ascii: ";")) ?? bytes.endIndex
    let blank = { (byte: UInt8) in byte == 0x20 || byte == 0x09 }
    let mediaType = bytes[..<end].drop(while: blank).reversed().drop(while: blank).reversed()
    let expected = "application/x-www-form-urlencoded".utf8
    return mediaType.count == expected.count && zip(mediaType, expected).allSatisfy { ($0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0) == $1 }
}

func jsonResponse(_ status: HTTPResponse.Status, _ object: JSONObject, headers extra: HTTPFields = [:]) -> Response {
    var headers: HTTPFields = [.contentType: "application/json", .cacheControl: "no-store", pragma: "no-cache"]
    headers.append(contentsOf: extra)
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: object.jsonString)))
}

/// RFC 6749 §5.2: 400 with `error` and `error_description`; `invalid_client` is 401 with a Basic challenge
/// (the RFC requires it when the client used the Authorization header; Tessera always sends it).
func errorResponse(_ error: OAuthError, request: Request, status: HTTPResponse.Status? = nil) -> Response {
    let object = JSONObject(["error": .string(error.code.rawValue), "error_description": .string(error.description)])
    switch error.code {
    case .invalidClient:
        return jsonResponse(.unauthorized, object, headers: [.wwwAuthenticate: #"Basic realm="tessera", charset="UTF-8""#])
    case .temporarilyUnavailable:
        return jsonResponse(.serviceUnavailable, object)
    default:
        return jsonResponse(status ?? .badRequest, object)
    }
}

/// One log line per request: method, path, status, duration, and the request id (`request_id` in JSON
/// logs), which the response carries as `X-Request-Id` so a client's complaint can be tied to its line.
/// Never a header, body, token or secret.
struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = TesseraRequestContext
    let activity: RequestActivity

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        activity.begin()
        defer { activity.end() }
        var response = try await next(request, context)
        response.headers[requestIDHeader] = context.id
        let elapsed = ContinuousClock.now - start
        context.logger.info(
            "request",
            metadata: [
                "method": .string(request.method.rawValue), "path": .string(request.uri.path),
                "status": .stringConvertible(response.status.code),
                "ms": .string(tenthsOfMilliseconds(elapsed)),
            ])
        return response
    }
}

/// A duration in milliseconds with one decimal, rounded down (`12.3`): the request line's `ms`.
func tenthsOfMilliseconds(_ duration: Duration) -> String {
    let tenths = duration.components.seconds * 10_000 + duration.components.attoseconds / 100_000_000_000_000
    return "\(tenths / 10).\(tenths % 10)"
}

/// Binds the configured address and lets it go again: `tessera serve` calls it before it opens its folders,
/// so a port in use is reported before anything is created or announced. (The real bind can still lose a
/// race; `describeStartFailure` words that error the same way.)
public func probeListeningAddress(_ configuration: ServerConfiguration) async throws {
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .bind(host: configuration.host, port: configuration.port).get()
    try await channel.close()
}

/// Plain words for a failure to listen (a port in use, a privileged port, an address not on this
/// machine); nil for anything else.
public func describeStartFailure(_ error: any Error, configuration: ServerConfiguration) -> String? {
    let address = "\(configuration.host):\(configuration.port)"
    if let error = error as? IOError {
        switch error.errnoCode {
        case EADDRINUSE:
            let next = configuration.port == 65_535 ? 8081 : configuration.port + 1
            return
                "port \(configuration.port) is in use on \(configuration.host) (another tessera serve?); try --port \(next), or stop what listens there"
        case EACCES:
            return "not allowed to listen on \(address): ports below 1024 need privileges; try --port 8080"
        case EADDRNOTAVAIL:
            return "cannot listen on \(address): \(configuration.host) is not an address of this machine; try --host 127.0.0.1"
        default:
            return nil
        }
    }
    if error is SocketAddressError {
        return "cannot listen on \(address): \(configuration.host) does not resolve to an address of this machine; try --host 127.0.0.1"
    }
    return nil
}

/// A known path asked with a method it does not serve: 405 with `Allow` (RFC 9110 §15.5.6) and an RFC 6749
/// style JSON error, instead of an empty 404 (`GET /token` is a common first mistake: RFC 6749 §3.2 wants POST).
struct MethodNotAllowedMiddleware: RouterMiddleware {
    typealias Context = TesseraRequestContext
    let allowed: [String: [HTTPRequest.Method]]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let methods = allowed[request.uri.path], !methods.contains(request.method) else { return try await next(request, context) }
        let names = methods.map(\.rawValue).joined(separator: ", ")
        let object = JSONObject(["error": .string("invalid_request"), "error_description": .string("\(request.uri.path) answers \(names) only")])
        return jsonResponse(.methodNotAllowed, object, headers: [.allow: names])
    }
}
