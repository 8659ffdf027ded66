import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import TesseraJOSE
import TesseraTestSupport
import Testing

@testable import ExampleResourceServer
@testable import TesseraHummingbird
@testable import TesseraVerifier

@Suite("Example resource server end to end (issuer JWKS and resource server on loopback sockets)")
struct ResourceServerEndToEndTests {
    /// Runs the example resource server live, its keys fetched from `endpoint`'s JWKS over HTTP.
    static func withResourceServer(
        _ key: SigningKey, jwksRequests: Int = 1, _ body: @escaping @Sendable (any TestClientProtocol, TokenFactory) async throws -> Void
    ) async throws {
        let endpoint = JWKSEndpoint(keys: [key])
        try await endpoint.run { base in
            var factory = TokenFactory(key: key)
            factory.issuer = base.absoluteString
            factory.audience = "notes-api"
            factory.now = Int64(Date().timeIntervalSince1970)
            let source = try RemoteJWKSKeySource(issuer: base.absoluteString, policy: .patient)
            let verifier = try AccessTokenVerifier(configuration: .init(issuer: base.absoluteString, audience: "notes-api"), keySource: source)
            let app = buildResourceServer(verifier: verifier, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            let configured = factory
            try await onServerThreads { try await app.test(.live) { client in try await body(client, configured) } }
            #expect(endpoint.requests == jwksRequests, "JWKS requests the resource server made")
        }
    }

    static func get(
        _ client: any TestClientProtocol, _ path: String, authorization: [String] = [],
        method: HTTPRequest.Method = .get
    ) async throws -> (HTTPResponse.Status, String?, String) {
        var headers = HTTPFields()
        for value in authorization { headers.append(HTTPField(name: .authorization, value: value)) }
        return try await client.execute(uri: path, method: method, headers: headers) { response in
            (response.status, response.headers[.wwwAuthenticate], String(buffer: response.body))
        }
    }

    @Test("THREATS F1: an OpenID Connect ID token (typ JWT, nonce, at_hash), even one whose aud is the API, is refused with 401 invalid_token")
    func idTokenRefused() async throws {
        try await Self.withResourceServer(try SigningKey.generate(.es256)) { client, factory in
            var claims = factory.standardClaims
            claims["aud"] = .string("notes-api")
            claims["scope"] = .string("notes:read")
            claims["nonce"] = .string("n-1")
            claims["at_hash"] = .string("77QmUPtjPfzWtF2AnpK9RQ")
            let header = #"{"alg":"ES256","typ":"JWT","kid":"\#(factory.key.keyID!)"}"#
            let idToken = try factory.token(header: header, payload: claims.jsonString)
            let (status, challenge, _) = try await Self.get(client, "/notes", authorization: ["Bearer \(idToken)"])
            #expect(status == .unauthorized && challenge?.contains(#"error="invalid_token""#) == true)
        }
    }

    @Test("a token with the scope reaches the protected route; the claims are in the context")
    func success() async throws {
        try await Self.withResourceServer(try SigningKey.generate(.es256)) { client, factory in
            let token = try factory.token {
                $0["aud"] = .string("notes-api")
                $0["scope"] = .string("notes:read")
            }
            let (status, _, body) = try await Self.get(client, "/notes", authorization: ["Bearer \(token)"])
            #expect(status == .ok && body == #"["buy milk"]"#)
            let (meStatus, _, me) = try await Self.get(client, "/me", authorization: ["Bearer \(token)"])
            #expect(meStatus == .ok && me.contains(#""sub":"alice""#) && me.contains(#""scope":"notes:read""#))
            // /me is JSON, labelled so, and escaped: a subject may hold a quote, a backslash, control characters.
            let oddSubject = "al\"i\\ce\u{0}\u{1B}[31m\n\u{202E}\u{200B}"
            let odd = try factory.token {
                $0["aud"] = .string("notes-api")
                $0["sub"] = .string(oddSubject)
            }
            let (type, oddMe) = try await client.execute(uri: "/me", method: .get, headers: [.authorization: "Bearer \(odd)"]) { response in
                (response.headers[.contentType], String(buffer: response.body))
            }
            #expect(type == "application/json")
            #expect(try JSONObject(parsing: Array(oddMe.utf8))["sub"]?.stringValue?.sameBytes(as: oddSubject) == true, "\(oddMe)")
            #expect(!oddMe.utf8.contains { $0 < 0x20 })
        }
    }

    @Test("RFC 6750 §3.1: no token → 401 without an error code; a bad token → 401 invalid_token")
    func unauthorized() async throws {
        try await Self.withResourceServer(try SigningKey.generate(.eddsa)) { client, factory in
            let (status, challenge, _) = try await Self.get(client, "/notes")
            #expect(status == .unauthorized && challenge == #"Bearer realm="notes""#)
            let expired = try factory.token {
                $0["aud"] = .string("notes-api")
                $0["exp"] = .number(JSONNumber(factory.now - 120))
            }
            let (expiredStatus, expiredChallenge, body) = try await Self.get(client, "/notes", authorization: ["Bearer \(expired)"])
            #expect(expiredStatus == .unauthorized)
            #expect(expiredChallenge == #"Bearer realm="notes", error="invalid_token", error_description="expired""#)
            #expect(!body.contains(expired) && !(expiredChallenge ?? "").contains(expired), "the token is never echoed")
            let (basicStatus, _, _) = try await Self.get(client, "/notes", authorization: ["Basic YWxhZGRpbjpvcGVuc2VzYW1l"])
            #expect(basicStatus == .unauthorized)
            let (garbageStatus, garbageChallenge, _) = try await Self.get(client, "/notes", authorization: ["Bearer ***"])
            #expect(garbageStatus == .unauthorized && garbageChallenge?.contains("invalid_token") == true)
        }
    }

    @Test("RFC 6750 §3.1: a valid token without the route's scope → 403 insufficient_scope naming it")
    func insufficientScope() async throws {
        try await Self.withResourceServer(try SigningKey.generate(.rs256)) { client, factory in
            let token = try factory.token {
                $0["aud"] = .string("notes-api")
                $0["scope"] = .string("notes:read")
            }
            let (status, challenge, body) = try await Self.get(client, "/notes", authorization: ["Bearer \(token)"], method: .post)
            #expect(status == .forbidden)
            #expect(
                challenge
                    == #"Bearer realm="notes", error="insufficient_scope", error_description="the token lacks a required scope", scope="notes:write""#
            )
            // The body says what the header says.
            let json = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: String]
            #expect(
                json == ["error": "insufficient_scope", "error_description": "the token lacks a required scope", "scope": "notes:write"], "\(body)")
        }
    }

    @Test("A30: scheme is case-insensitive; two Authorization headers or a token in the URL → 400 invalid_request")
    func transport() async throws {
        try await Self.withResourceServer(try SigningKey.generate(.es256)) { client, factory in
            let token = try factory.token {
                $0["aud"] = .string("notes-api")
                $0["scope"] = .string("notes:read")
            }
            #expect(try await Self.get(client, "/notes", authorization: ["bearer \(token)"]).0 == .ok)
            #expect(try await Self.get(client, "/notes", authorization: ["BEARER  \(token)"]).0 == .ok)
            let (twice, challenge, _) = try await Self.get(client, "/notes", authorization: ["Bearer \(token)", "Bearer \(token)"])
            #expect(twice == .badRequest && challenge?.contains("invalid_request") == true)
            #expect(try await Self.get(client, "/notes?access_token=\(token)").0 == .badRequest)
            #expect(try await Self.get(client, "/notes?access_token=\(token)", authorization: ["Bearer \(token)"]).0 == .badRequest)
            #expect(try await Self.get(client, "/health").0 == .ok)
        }
    }

    @Test("A7: a jku or x5u header makes the verifier fetch nothing")
    func noFetchFromToken() async throws {
        let trap = JWKSEndpoint(keys: [])
        let attacker = try SigningKey.generate(.es256)
        try await trap.run { trapBase in
            // Two issuer requests: the first load, then the one unknown-kid refresh the cooldown allows.
            try await Self.withResourceServer(try SigningKey.generate(.es256), jwksRequests: 2) { client, factory in
                for member in ["jku", "x5u"] {
                    let header = #"{"alg":"ES256","typ":"at+jwt","kid":"\#(attacker.keyID!)","\#(member)":"\#(trapBase.absoluteString)/jwks.json"}"#
                    let token = try factory.token(header: header, signer: attacker)
                    #expect(try await Self.get(client, "/notes", authorization: ["Bearer \(token)"]).0 == .unauthorized)
                }
            }
            #expect(trap.requests == 0, "no request reached the attacker's URL")
        }
    }

    @Test("WWW-Authenticate attribute values are sanitised (RFC 6750 §3)")
    func challengeQuoting() {
        #expect(BearerChallenge.quoted("a\"b\\c\nd") == "a?b?c?d")
        #expect(BearerTokenMiddleware<BearerRequestContext>.bearerToken("Bearer abc.def-_~+/=") == "abc.def-_~+/=")
        #expect(BearerTokenMiddleware<BearerRequestContext>.bearerToken("Basic abc") == nil)
        #expect(BearerTokenMiddleware<BearerRequestContext>.bearerToken("Bearer a b") == "")
    }
}
