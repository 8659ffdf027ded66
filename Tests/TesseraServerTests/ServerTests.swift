import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import TesseraIssuer
import TesseraJOSE
import TesseraTestSupport
import TesseraVerifier
import Testing

@testable import TesseraServer

@Suite("tessera serve: HTTP endpoints")
struct ServerTests {
    @Test("RFC 6749 §4.4, §5.1: client_credentials over Basic and post; JSON, no-store; the token verifies against the served JWKS")
    func clientCredentials() async throws {
        let fixture = try ServerFixture()
        defer { fixture.close() }
        try await fixture.run(.live) { client in
            let reply = try await post(client, "/token", "grant_type=client_credentials&scope=read+write", authorization: fixture.basicAuth)
            #expect(reply.status == .ok && reply.headers[.cacheControl] == "no-store" && reply.headers[HTTPField.Name("Pragma")!] == "no-cache")
            #expect(reply.string("token_type") == "Bearer" && reply.string("scope") == "read write" && reply.json["refresh_token"] == nil)
            #expect(reply.json["expires_in"] == .number(JSONNumber(600)))
            let jwks = try await get(client, "/.well-known/jwks.json")
            var configuration = AccessTokenVerifier.Configuration(issuer: "http://127.0.0.1:8080", audience: "api")
            configuration.leeway = 5
            let keys = try VerificationKeySet(jwks: try JWKSet(json: jwks.body))
            let token = try AccessTokenVerifier(configuration: configuration, keys: keys).verify(
                try #require(reply.string("access_token")), using: keys)
            #expect(token.subject == "svc" && token.scopes == ["read", "write"])
            let posted = try await post(client, "/token", "grant_type=client_credentials&client_id=svc&client_secret=\(fixture.secret)")
            #expect(posted.status == .ok && posted.string("scope") == "read")
        }
    }

    @Test("RFC 6749 §5.2: each error code with its status; invalid_client is 401 with a Basic challenge; nothing secret is echoed")
    func errors() async throws {
        let fixture = try ServerFixture()
        defer { fixture.close() }
        try await fixture.run { client in
            let cases: [(String, String?, String, HTTPResponse.Status, String)] = [
                ("/token", fixture.basicAuth, "", .badRequest, "invalid_request"),
                ("/token", fixture.basicAuth, "grant_type=client_credentials&grant_type=client_credentials", .badRequest, "invalid_request"),
                ("/token", fixture.basicAuth, "grant_type=client_credentials&scope=%zz", .badRequest, "invalid_request"),
                ("/token", "Basic " + Data("svc:wrong".utf8).base64EncodedString(), "grant_type=client_credentials", .unauthorized, "invalid_client"),
                ("/token", nil, "grant_type=client_credentials", .unauthorized, "invalid_client"),
                ("/token", fixture.basicAuth, "grant_type=client_credentials&client_secret=\(fixture.secret)", .badRequest, "invalid_request"),
                ("/token", fixture.basicAuth, "grant_type=implicit", .badRequest, "unsupported_grant_type"),
                ("/token", fixture.basicAuth, "grant_type=password&username=a&password=b", .badRequest, "unauthorized_client"),
                ("/token", nil, "grant_type=client_credentials&client_id=app", .badRequest, "unauthorized_client"),
                ("/token", fixture.basicAuth, "grant_type=client_credentials&scope=admin", .badRequest, "invalid_scope"),
                ("/token", fixture.basicAuth, "grant_type=refresh_token&refresh_token=tsr_nope", .badRequest, "invalid_grant"),
                ("/token", fixture.basicAuth, "grant_type=refresh_token", .badRequest, "invalid_request"),
            ]
            for (path, authorization, form, status, code) in cases {
                let reply = try await post(client, path, form, authorization: authorization)
                #expect(reply.status == status && reply.error == code, "\(form): \(reply.status) \(reply.body)")
                #expect(reply.headers[.cacheControl] == "no-store")
                #expect(!reply.body.contains(fixture.secret))
                if code == "invalid_client" { #expect(reply.headers[.wwwAuthenticate]?.hasPrefix("Basic realm=") == true) }
            }
            let json = try await post(
                client, "/token", #"{"grant_type":"client_credentials"}"#, authorization: fixture.basicAuth, contentType: "application/json")
            #expect(json.status == .badRequest && json.error == "invalid_request")
            let large = try await post(
                client, "/token", "grant_type=client_credentials&pad=" + String(repeating: "a", count: 20_000), authorization: fixture.basicAuth)
            #expect(large.status == .contentTooLarge && large.error == "invalid_request")
        }
    }

    @Test("RFC 6749 §6 over HTTP: refresh rotates; a replay is invalid_grant and revokes the family; RFC 7009 revocation; RFC 7662 introspection")
    func refreshRevokeIntrospect() async throws {
        let fixture = try ServerFixture()
        defer { fixture.close() }
        let alice = try fixture.addUser()
        let family = try await fixture.service.refreshTokens.issue(
            NewRefreshTokenFamily(clientID: "svc", subject: alice.subject, scope: ["read", "write"], authTime: Date()))
        try await fixture.run(.live) { client in
            let first = try await post(
                client, "/token", "grant_type=refresh_token&refresh_token=\(family.token.rawValue)&scope=read", authorization: fixture.basicAuth)
            #expect(first.status == .ok && first.string("scope") == "read")
            let successor = try #require(first.string("refresh_token"))
            let introspected = try await post(client, "/introspect", "token=\(successor)", authorization: fixture.basicAuth)
            #expect(
                introspected.json["active"] == .bool(true) && introspected.string("sub") == alice.subject
                    && introspected.string("token_type") == "refresh_token")
            let access = try await post(client, "/introspect", "token=\(first.string("access_token")!)", authorization: fixture.basicAuth)
            #expect(access.json["active"] == .bool(true) && access.string("client_id") == "svc" && access.string("scope") == "read")
            let old = try await post(client, "/introspect", "token=\(family.token.rawValue)", authorization: fixture.basicAuth)
            #expect(old.status == .ok && old.json["active"] == .bool(false))
            let publicIntrospection = try await post(client, "/introspect", "token=\(successor)&client_id=app")
            #expect(publicIntrospection.status == .unauthorized && publicIntrospection.error == "invalid_client")

            let replay = try await post(
                client, "/token", "grant_type=refresh_token&refresh_token=\(family.token.rawValue)", authorization: fixture.basicAuth)
            #expect(replay.status == .badRequest && replay.error == "invalid_grant")
            let afterReplay = try await post(
                client, "/token", "grant_type=refresh_token&refresh_token=\(successor)", authorization: fixture.basicAuth)
            #expect(afterReplay.error == "invalid_grant")

            let second = try await fixture.service.refreshTokens.issue(
                NewRefreshTokenFamily(clientID: "svc", subject: "bob", scope: ["read"], authTime: Date()))
            let wrongClient = try await post(client, "/revoke", "token=\(second.token.rawValue)&client_id=app")
            #expect(wrongClient.status == .badRequest && wrongClient.error == "unauthorized_client")
            let revoked = try await post(
                client, "/revoke", "token=\(second.token.rawValue)&token_type_hint=refresh_token", authorization: fixture.basicAuth)
            #expect(revoked.status == .ok && revoked.body.isEmpty)
            let again = try await post(
                client, "/token", "grant_type=refresh_token&refresh_token=\(second.token.rawValue)", authorization: fixture.basicAuth)
            #expect(again.error == "invalid_grant")
            // RFC 7009 §2.2: unknown tokens and access tokens are answered 200.
            #expect(try await post(client, "/revoke", "token=garbage", authorization: fixture.basicAuth).status == .ok)
            #expect(try await post(client, "/revoke", "token=\(first.string("access_token")!)", authorization: fixture.basicAuth).status == .ok)
            #expect(try await post(client, "/revoke", "", authorization: fixture.basicAuth).error == "invalid_request")
        }
    }

    @Test("JWKS with Cache-Control max-age and an ETag (304 on If-None-Match); RFC 8414 metadata; health")
    func discovery() async throws {
        let fixture = try ServerFixture()
        defer { fixture.close() }
        try await fixture.run { client in
            let jwks = try await get(client, "/.well-known/jwks.json")
            #expect(
                jwks.status == .ok && jwks.headers[.cacheControl] == "public, max-age=300" && jwks.headers[.contentType] == "application/jwk-set+json"
            )
            let etag = try #require(jwks.headers[.eTag])
            let set = try JWKSet(json: jwks.body)
            // The ES256 access-token key and the RS256 ID-token key (OpenID Connect Core §15.1).
            #expect(set.keys.count == 2 && Set(set.keys.map(\.algorithm)) == ["ES256", "RS256"] && !set.containsPrivateMembers)
            let cached = try await get(client, "/.well-known/jwks.json", headers: [.ifNoneMatch: etag])
            #expect(cached.status == .notModified && cached.body.isEmpty)
            let metadata = try await get(client, "/.well-known/oauth-authorization-server")
            #expect(metadata.status == .ok && metadata.string("issuer") == "http://127.0.0.1:8080")
            #expect(
                metadata.string("token_endpoint") == "http://127.0.0.1:8080/token"
                    && metadata.string("jwks_uri") == "http://127.0.0.1:8080/.well-known/jwks.json")
            #expect(metadata.json["scopes_supported"] == .array([.string("openid"), .string("read"), .string("write")]))
            // RFC 8414 §2 for the code flow: the endpoint, code only (no implicit grant), S256, RFC 9207 iss.
            #expect(metadata.string("authorization_endpoint") == "http://127.0.0.1:8080/authorize")
            #expect(metadata.json["response_types_supported"] == .array([.string("code")]))
            #expect(metadata.json["code_challenge_methods_supported"] == .array([.string("S256")]))
            #expect(metadata.json["authorization_response_iss_parameter_supported"] == .bool(true))
            #expect(
                metadata.json["grant_types_supported"]
                    == .array(["authorization_code", "client_credentials", "refresh_token", "password"].map(JSONValue.string)))
            // Liveness (and /healthz, its older name) and readiness (docs/operations.md).
            for path in ["/health/live", "/healthz"] { #expect(try await get(client, path).body == #"{"status":"live"}"#) }
            let ready = try await get(client, "/health/ready")
            #expect(
                ready.status == .ok
                    && ready.body == #"{"status":"ready","checks":{"signing_keys":{"status":"ok"},"refresh_store":{"status":"ok"}}}"#)
            #expect(try await get(client, "/metrics").status == .notFound)  // never on the main port
        }
    }
}

@Suite("tessera serve: password grant and users")
struct PasswordGrantTests {
    @Test("RFC 6749 §4.3: a registered user signs in, gets a refresh token that rotates; wrong or unknown credentials are invalid_grant")
    func passwordGrant() async throws {
        let fixture = try ServerFixture()
        defer { fixture.close() }
        let data = fixture.service.configuration.dataPath
        try UserStore(dataPath: data).add("alice", password: "correct horse battery", now: Date())
        let file = try String(contentsOfFile: data + "/users.json", encoding: .utf8)
        #expect(!file.contains("correct horse") && file.contains("scrypt$15$8$1$"))
        let legacy = try fixture.addPasswordClient([.password, .refreshToken])
        try await fixture.run { client in
            let signIn = try await post(client, "/token", "grant_type=password&username=alice&password=correct+horse+battery", authorization: legacy)
            #expect(signIn.status == .ok && signIn.string("scope") == "read")
            let refresh = try #require(signIn.string("refresh_token"))
            #expect(refresh.hasPrefix("tsr_"))
            let rotated = try await post(client, "/token", "grant_type=refresh_token&refresh_token=\(refresh)", authorization: legacy)
            #expect(rotated.status == .ok && rotated.string("refresh_token") != refresh)
            let claims = try JSONObject(parsing: try Base64URL.decode(String(try #require(rotated.string("access_token")).split(separator: ".")[1])))
            // sub is the user's stable random identifier, not the username (OpenID Connect Core §2).
            let alice = try #require(try UserStore(dataPath: data).users().named("alice"))
            #expect(claims["sub"] == .string(alice.subject) && alice.subject.count == 22 && claims["auth_time"] != nil)

            for form in ["grant_type=password&username=alice&password=wrong", "grant_type=password&username=mallory&password=whatever1"] {
                let refused = try await post(client, "/token", form, authorization: legacy)
                #expect(
                    refused.status == .badRequest && refused.error == "invalid_grant"
                        && refused.string("error_description") == "the username or password is wrong")
            }
            #expect(try await post(client, "/token", "grant_type=password&username=alice", authorization: legacy).error == "invalid_request")
            // The password grant is off for clients not registered with it.
            #expect(
                try await post(
                    client, "/token", "grant_type=password&username=alice&password=correct+horse+battery", authorization: fixture.basicAuth
                ).error == "unauthorized_client")
        }
        #expect(try UserStore(dataPath: data).remove("alice"))
        #expect(try UserStore(dataPath: data).users().isEmpty)
    }
}

@Suite("Throttling failed authentication")
struct ThrottleTests {
    @Test("Past five free failures a key waits 1, 2, 4 … s (capped); successes clear it; failures only count")
    func policy() {
        let clock = Seconds()
        let throttle = FailureThrottle(now: { clock.now })
        let a = FailureThrottle.client("a", address: "192.0.2.1")
        let b = FailureThrottle.client("b", address: "192.0.2.1")
        for _ in 0..<5 { throttle.recordFailure(a) }
        #expect(throttle.retryAfter(a) == nil)
        throttle.recordFailure(a)
        #expect(throttle.retryAfter(a + b) == 1)
        throttle.recordFailure(a)
        #expect(throttle.retryAfter(a) == 2)
        for _ in 0..<20 { throttle.recordFailure(a) }
        #expect(throttle.retryAfter(a) == 300)
        #expect(throttle.retryAfter(b) == nil)
        clock.advance(300)
        #expect(throttle.retryAfter(a) == nil)
        throttle.recordSuccess(a)
        for _ in 0..<5 { throttle.recordFailure(a) }
        #expect(throttle.retryAfter(a) == nil)
        // Failures spread beyond the window never block.
        let x = FailureThrottle.user("x", address: "192.0.2.2")
        for _ in 0..<20 {
            clock.advance(61)
            throttle.recordFailure(x)
        }
        #expect(throttle.retryAfter(x) == nil)
    }

    @Test("HTTP: repeated wrong secrets get 429 with Retry-After, even for the right secret, until the delay passes; other clients are not slowed")
    func http() async throws {
        let clock = Seconds()
        let fixture = try ServerFixture(throttle: FailureThrottle(now: { clock.now }))
        defer { fixture.close() }
        try await fixture.run { client in
            let wrong = "Basic " + Data("svc:wrong".utf8).base64EncodedString()
            for _ in 0..<6 {
                #expect(try await post(client, "/token", "grant_type=client_credentials", authorization: wrong).status == .unauthorized)
            }
            let blocked = try await post(client, "/token", "grant_type=client_credentials", authorization: fixture.basicAuth)
            #expect(blocked.status == .tooManyRequests && blocked.headers[.retryAfter] == "1" && blocked.error == "invalid_request")
            #expect(try await post(client, "/token", "grant_type=client_credentials&client_id=app").error == "unauthorized_client")
            clock.advance(1)
            #expect(try await post(client, "/token", "grant_type=client_credentials", authorization: fixture.basicAuth).status == .ok)
        }
    }
}

@Suite("Configuration file")
struct ConfigurationTests {
    @Test("Every option read from JSON over the defaults; unknown options and bad values refused with the reason")
    func file() throws {
        let (folder, path) = try TemporaryDirectory.holding("tessera.json", label: "tessera-config")
        defer { folder.remove() }
        try
            #"{"host": "0.0.0.0", "port": 9000, "issuer": "https://auth.example.com", "keys": "/srv/keys", "data": "/srv/data", "max_body_size": 8192, "demo_client": false}"#
            .write(toFile: path, atomically: true, encoding: .utf8)
        let configuration = try ServerConfiguration.load(file: path)
        #expect(configuration.host == "0.0.0.0" && configuration.port == 9000 && configuration.issuerURL == "https://auth.example.com")
        #expect(
            configuration.keysPath == "/srv/keys" && configuration.dataPath == "/srv/data" && configuration.maximumBodySize == 8192
                && !configuration.createDemoClient)
        #expect(ServerConfiguration().issuerURL == "http://127.0.0.1:8080")
        for (text, reason) in [
            (#"{"prot": 1}"#, "unknown option \"prot\""), (#"{"port": 70000}"#, "port"),
            (#"{"issuer": "https://a.example/?q=1"}"#, "issuer"), (#"{"issuer": "https://a.example/"}"#, "issuer"),
            (#"{"max_body_size": 10}"#, "max_body_size"), (#"{"port": "80"}"#, "port"), ("[]", "JSON object"),
        ] {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            do {
                _ = try ServerConfiguration.load(file: path)
                Issue.record("accepted \(text)")
            } catch let error as ConfigurationError {
                #expect(error.description.contains(reason), "\(error)")
            }
        }
    }
}

@Suite("THREATS section B rows at the token endpoint")
struct TokenEndpointThreatTests {
    @Test("B11: after reuse the family's access tokens introspect as inactive, and its current refresh token is dead")
    func reuseRevokesAccessTokensAtIntrospection() async throws {
        let fixture = try ServerFixture()
        defer { fixture.close() }
        let alice = try fixture.addUser()
        let family = try await fixture.service.refreshTokens.issue(
            NewRefreshTokenFamily(clientID: "svc", subject: alice.subject, scope: ["read"], authTime: Date()))
        try await fixture.run { client in
            let first = try await post(
                client, "/token", "grant_type=refresh_token&refresh_token=\(family.token.rawValue)", authorization: fixture.basicAuth)
            let access = try #require(first.string("access_token"))
            let claims = try JSONObject(parsing: try Base64URL.decode(String(access.split(separator: ".")[1])))
            #expect(claims["tessera_rtf"] == .string(family.record.familyID))
            #expect(try await post(client, "/introspect", "token=\(access)", authorization: fixture.basicAuth).json["active"] == .bool(true))
            #expect(
                try await post(client, "/token", "grant_type=refresh_token&refresh_token=\(family.token.rawValue)", authorization: fixture.basicAuth)
                    .error == "invalid_grant")
            #expect(try await post(client, "/introspect", "token=\(access)", authorization: fixture.basicAuth).json["active"] == .bool(false))
            #expect(
                try await post(client, "/introspect", "token=\(first.string("refresh_token")!)", authorization: fixture.basicAuth).json["active"]
                    == .bool(false))
        }
    }

    @Test("B12: a refresh token stops working when its client is removed; B13: client ids and usernames cannot collide")
    func clientRemovalAndNamespaces() async throws {
        let fixture = try ServerFixture()
        defer { fixture.close() }
        let data = fixture.service.configuration.dataPath
        let alice = try fixture.addUser()
        let family = try await fixture.service.refreshTokens.issue(
            NewRefreshTokenFamily(clientID: "svc", subject: alice.subject, scope: ["read"], authTime: Date()))
        expectError(RegistrationError.Code.nameTaken) { try UserStore(dataPath: data).add("svc", password: "a long password", now: Date()) }
        try ClientStore(dataPath: data).update { $0.clients.removeAll { $0.id == "svc" } }
        try await fixture.run { client in
            let reply = try await post(
                client, "/token", "grant_type=refresh_token&refresh_token=\(family.token.rawValue)", authorization: fixture.basicAuth)
            #expect(reply.status == .unauthorized && reply.error == "invalid_client")
        }
    }

    @Test("B21: GET /token is refused; B22: a spoofed X-Forwarded-Host changes neither iss nor metadata URLs")
    func requestHygiene() async throws {
        let fixture = try ServerFixture()
        defer { fixture.close() }
        try await fixture.run { client in
            let viaGet = try await get(client, "/token?grant_type=client_credentials")
            #expect(viaGet.status == .methodNotAllowed && viaGet.headers[.allow] == "POST" && viaGet.error == "invalid_request")
            #expect(viaGet.headers[.cacheControl] == "no-store")
            let forwarded: HTTPFields = [
                HTTPField.Name("X-Forwarded-Host")!: "evil.example", HTTPField.Name("X-Forwarded-Proto")!: "https",
                HTTPField.Name("Forwarded")!: "host=evil.example;proto=https",
            ]
            let metadata = try await get(client, "/.well-known/oauth-authorization-server", headers: forwarded)
            #expect(!metadata.body.contains("evil") && metadata.string("issuer") == "http://127.0.0.1:8080")
            let token = try await client.execute(
                uri: "/token", method: .post,
                headers: forwarded.merging([.contentType: "application/x-www-form-urlencoded", .authorization: fixture.basicAuth]),
                body: ByteBuffer(string: "grant_type=client_credentials")
            ) { String(buffer: $0.body) }
            let access = try #require((try JSONObject(parsing: token))["access_token"]).stringValue
            let claims = try JSONObject(parsing: try Base64URL.decode(String(access.split(separator: ".")[1])))
            #expect(claims["iss"] == .string("http://127.0.0.1:8080"))
        }
    }
}

extension ServerTests {
    @Test("RFC 9110 §15.5.6: a known path asked with another method is 405 with Allow naming its methods; an unknown path stays 404")
    func methodNotAllowed() async throws {
        let fixture = try ServerFixture()
        defer { fixture.close() }
        try await fixture.run { client in
            let cases: [(String, HTTPRequest.Method, String)] = [
                ("/token", .get, "POST"), ("/token", .put, "POST"), ("/revoke", .get, "POST"), ("/introspect", .delete, "POST"),
                ("/.well-known/jwks.json", .post, "GET"), ("/healthz", .post, "GET"), ("/authorize", .put, "GET, POST"),
                ("/authorize/sign-in", .get, "POST"), ("/authorize/consent", .get, "POST"),
            ]
            for (path, method, allow) in cases {
                let (status, allowed, body) = try await client.execute(uri: path, method: method) {
                    ($0.status, $0.headers[.allow], String(buffer: $0.body))
                }
                #expect(status == .methodNotAllowed && allowed == allow, "\(method) \(path)")
                #expect(body.contains("answers \(allow) only"), "\(body)")
            }
            #expect(try await get(client, "/nothing-here").status == .notFound)
            #expect(try await get(client, "/tokens").status == .notFound)
            // The routes themselves still answer.
            #expect(try await get(client, "/healthz").status == .ok)
        }
    }
}

extension HTTPFields {
    func merging(_ other: HTTPFields) -> HTTPFields {
        var fields = self
        for field in other { fields[field.name] = field.value }
        return fields
    }
}

extension JSONValue {
    var stringValue: String {
        if case .string(let value) = self { return value }
        return ""
    }
}
