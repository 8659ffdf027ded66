import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import TesseraJOSE
import TesseraTestSupport
import TesseraVerifier
import Testing

@testable import TesseraHummingbird

/// The adapter on its own: a router with the bearer middleware and per-route scopes, driven through
/// Hummingbird's router test client (no sockets), with tokens from a real key.
@Suite("TesseraHummingbird: bearer-token middleware and per-route scopes")
struct BearerTokenMiddlewareTests {
    struct Reply {
        let status: HTTPResponse.Status
        let challenge: String?
        let body: String
        var json: [String: String] { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: String] ?? [:] }
    }

    /// `/whoami` needs any valid token; `/notes` needs `notes:read`; `/admin` needs `notes:write` and `admin`.
    static func withRouter(
        keySource: (any KeySource)? = nil, _ body: @Sendable (any TestClientProtocol, TokenFactory) async throws -> Void
    ) async throws {
        var factory = TokenFactory(key: try SigningKey.generate(.es256))
        factory.now = Int64(Date().timeIntervalSince1970)
        let keys = try keySource ?? StaticKeySource(VerificationKeySet([try factory.key.verificationKey()]))
        let verifier = try AccessTokenVerifier(configuration: .init(issuer: factory.issuer, audience: factory.audience), keySource: keys)
        let router = Router(context: BearerRequestContext.self)
        router.get("/open") { _, _ in "open" }
        let protected = router.group().add(middleware: BearerTokenMiddleware(verifier: verifier, realm: "api"))
        protected.get("/whoami") { _, context in "\(context.accessToken!.subject) \(context.accessToken!.scopes.sorted().joined(separator: ","))" }
        protected.group("notes").add(middleware: RequireScopesMiddleware("notes:read", realm: "api")).get { _, _ in "notes" }
        protected.group("admin").add(middleware: RequireScopesMiddleware("notes:write", "admin", realm: "api")).get { _, _ in "admin" }
        // Scopes required without the bearer middleware in front: nothing in the context, so 401.
        router.group("misconfigured").add(middleware: RequireScopesMiddleware<BearerRequestContext>("x")).get { _, _ in "never" }
        let app = Application(router: router)
        let configured = factory
        try await app.test(.router) { client in try await body(client, configured) }
    }

    static func get(_ client: any TestClientProtocol, _ uri: String, _ authorization: [String] = []) async throws -> Reply {
        var headers = HTTPFields()
        for value in authorization { headers.append(HTTPField(name: .authorization, value: value)) }
        return try await client.execute(uri: uri, method: .get, headers: headers) {
            Reply(status: $0.status, challenge: $0.headers[.wwwAuthenticate], body: String(buffer: $0.body))
        }
    }

    @Test("A valid token reaches the route with the verified token in the context; unprotected routes need none")
    func validToken() async throws {
        try await Self.withRouter { client, factory in
            let token = try factory.token()
            let whoami = try await Self.get(client, "/whoami", ["Bearer \(token)"])
            #expect(whoami.status == .ok && whoami.body == "alice read,write")
            #expect(try await Self.get(client, "/open").status == .ok)
            // RFC 9110 §11.1: the scheme is case-insensitive; extra spaces before the token are tolerated.
            for scheme in ["bearer ", "BEARER ", "Bearer   "] {
                #expect(try await Self.get(client, "/whoami", [scheme + token]).status == .ok, "\(scheme)")
            }
        }
    }

    @Test("RFC 6750 §3.1: no token is 401 with a bare challenge; a failed check is 401 invalid_token naming it, in header and body alike")
    func refused() async throws {
        try await Self.withRouter { client, factory in
            let none = try await Self.get(client, "/whoami")
            #expect(none.status == .unauthorized && none.challenge == #"Bearer realm="api""#)
            let expired = try factory.token { $0["exp"] = .number(JSONNumber(factory.now - 3_600)) }
            let refused = try await Self.get(client, "/whoami", ["Bearer \(expired)"])
            #expect(refused.status == .unauthorized)
            #expect(refused.challenge == #"Bearer realm="api", error="invalid_token", error_description="expired""#)
            #expect(refused.json == ["error": "invalid_token", "error_description": "expired"])
            #expect(!refused.body.contains(expired) && !(refused.challenge ?? "").contains(expired), "the token is never echoed")
            // Another scheme is no bearer token; a malformed b64token is a refused token.
            #expect(try await Self.get(client, "/whoami", ["Basic YTpi"]).challenge == #"Bearer realm="api""#)
            let garbage = try await Self.get(client, "/whoami", ["Bearer ***"])
            #expect(garbage.status == .unauthorized && garbage.json["error"] == "invalid_token")
        }
    }

    @Test("RFC 6750 §2: two Authorization fields, or a token in the URL, are 400 invalid_request (RFC 6750 §5.3)")
    func invalidRequest() async throws {
        try await Self.withRouter { client, factory in
            let token = try factory.token()
            let twice = try await Self.get(client, "/whoami", ["Bearer \(token)", "Bearer \(token)"])
            #expect(
                twice.status == .badRequest && twice.json["error"] == "invalid_request"
                    && twice.challenge?.contains(#"error="invalid_request""#) == true)
            let inURL = try await Self.get(client, "/whoami?access_token=\(token)", ["Bearer \(token)"])
            #expect(inURL.status == .badRequest && inURL.json["error"] == "invalid_request")
        }
    }

    @Test("RFC 6750 §3.1: a valid token without every scope of the route is 403 insufficient_scope naming them; with them it passes")
    func scopes() async throws {
        try await Self.withRouter { client, factory in
            let reader = try factory.token { $0["scope"] = .string("notes:read") }
            #expect(try await Self.get(client, "/notes", ["Bearer \(reader)"]).status == .ok)
            let forbidden = try await Self.get(client, "/admin", ["Bearer \(reader)"])
            #expect(forbidden.status == .forbidden)
            #expect(
                forbidden.challenge
                    == #"Bearer realm="api", error="insufficient_scope", error_description="the token lacks a required scope", scope="notes:write admin""#
            )
            #expect(
                forbidden.json == [
                    "error": "insufficient_scope", "error_description": "the token lacks a required scope", "scope": "notes:write admin",
                ])
            let half = try factory.token { $0["scope"] = .string("notes:write") }
            #expect(try await Self.get(client, "/admin", ["Bearer \(half)"]).status == .forbidden, "every scope is required, not one of them")
            let both = try factory.token { $0["scope"] = .string("admin notes:write") }
            #expect(try await Self.get(client, "/admin", ["Bearer \(both)"]).status == .ok)
            let noScope = try factory.token { $0["scope"] = nil }
            #expect(try await Self.get(client, "/notes", ["Bearer \(noScope)"]).status == .forbidden)
            #expect(try await Self.get(client, "/misconfigured", ["Bearer \(both)"]).status == .unauthorized)
        }
    }

    /// A key source whose issuer cannot be reached.
    struct Unreachable: KeySource {
        func currentKeys() async throws -> VerificationKeySet { throw TokenVerificationError(.keysUnavailable, "issuer unreachable") }
        func keysAfterUnknownKeyID() async -> VerificationKeySet? { nil }
    }

    @Test("Keys that cannot be had at all are 503 temporarily_unavailable without a challenge: the client's token is not at fault")
    func keysUnavailable() async throws {
        try await Self.withRouter(keySource: Unreachable()) { client, factory in
            let reply = try await Self.get(client, "/whoami", ["Bearer \(try factory.token())"])
            #expect(reply.status == .serviceUnavailable && reply.challenge == nil && reply.json == ["error": "temporarily_unavailable"])
        }
    }

    @Test("b64token (RFC 6750 §2.1): the token after 'Bearer '; other schemes are nil; characters outside the grammar make it malformed")
    func bearerToken() {
        typealias Middleware = BearerTokenMiddleware<BearerRequestContext>
        #expect(Middleware.bearerToken("Bearer abc.DEF-_~+/=") == "abc.DEF-_~+/=")
        #expect(Middleware.bearerToken("bearer  x") == "x")
        #expect(Middleware.bearerToken("Basic abc") == nil && Middleware.bearerToken("Bearer") == nil && Middleware.bearerToken("Bearerabc") == nil)
        for malformed in ["Bearer a b", "Bearer a\"b", "Bearer é", "Bearer a,b"] {
            #expect(Middleware.bearerToken(malformed) == "", "\(malformed)")
        }
    }
}
