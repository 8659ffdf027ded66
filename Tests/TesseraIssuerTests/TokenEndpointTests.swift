import Foundation
import TesseraJOSE
import TesseraTestSupport
import TesseraVerifier
import Testing

@testable import TesseraIssuer

/// A token endpoint over a fresh key folder, an in-memory refresh store and two clients.
struct EndpointFixture {
    let folder: TemporaryDirectory
    let clock = SteppedClock(Date(timeIntervalSince1970: TimeInterval(Int(Date().timeIntervalSince1970))))
    let keys: SigningKeyRing
    let store: InMemoryRefreshTokenStore
    let endpoint: TokenEndpoint
    let secret = "tcs_" + String(repeating: "k", count: 43)
    let reuses = EventCounter()

    init() throws {
        folder = try TemporaryDirectory("tessera-endpoint")
        keys = try SigningKeyRing(store: KeyStore(path: folder.appending("keys")))
        store = InMemoryRefreshTokenStore(clock: clock.wallClock)
        let registry = ClientRegistry(clients: [
            Client(
                id: "svc", type: .confidential, secretDigest: Client.digest(ofSecret: secret), grants: [.clientCredentials, .refreshToken],
                scopes: ["read", "write", "admin"], defaultScopes: ["read"], audience: "api", accessTokenLifetime: 300, created: Date()),
            Client(
                id: "app", type: .public, secretDigest: nil, grants: [.authorizationCode, .refreshToken], scopes: ["read", "write"],
                defaultScopes: ["read"], audience: "api", redirectURIs: ["https://app.example/cb"], created: Date()),
        ])
        let counter = reuses
        endpoint = TokenEndpoint(
            clients: { registry },
            handlers: [
                .clientCredentials: ClientCredentialsGrant(),
                .refreshToken: RefreshTokenGrant(store: store, onReuse: { _, _ in counter.increment() }),
            ],
            minter: AccessTokenMinter(issuer: "http://127.0.0.1:8080", keys: keys, clock: clock.wallClock))
    }

    func verify(_ token: String) throws -> AccessToken {
        var configuration = AccessTokenVerifier.Configuration(issuer: "http://127.0.0.1:8080", audience: "api")
        configuration.clock = clock.wallClock
        let set = try VerificationKeySet(jwks: keys.current.jwks)
        return try AccessTokenVerifier(configuration: configuration, keys: set).verify(token, using: set)
    }

    func expectError(
        _ code: OAuthError.Code, _ parameters: [String: String], authorization: String? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async {
        await TesseraTestSupport.expectError(code, sourceLocation: sourceLocation) {
            try await endpoint.handle(TokenRequest(parameters: parameters, authorization: authorization))
        }
    }
}

final class EventCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    var count: Int { lock.withLock { value } }
    func increment() { lock.withLock { value += 1 } }
}

@Suite("Token endpoint core (no HTTP)")
struct TokenEndpointTests {
    @Test("RFC 6749 §4.4 + RFC 9068: client_credentials mints an at+jwt the verifier accepts; sub is the client; no refresh token")
    func clientCredentials() async throws {
        let fixture = try EndpointFixture()
        defer { fixture.folder.remove() }
        let response = try await fixture.endpoint.handle(
            TokenRequest(parameters: ["grant_type": "client_credentials"], authorization: basic("svc", fixture.secret)))
        #expect(response.tokenType == "Bearer" && response.expiresIn == 300 && response.refreshToken == nil && response.scope == "read")
        let token = try fixture.verify(response.accessToken)
        #expect(token.subject == "svc" && token.clientID == "svc" && token.scopes == ["read"] && token.audience == ["api"])
        #expect(response.json.jsonString.hasPrefix(#"{"access_token":"#))
        let wider = try await fixture.endpoint.handle(
            TokenRequest(parameters: [
                "grant_type": "client_credentials", "scope": "write admin",
                "client_id": "svc", "client_secret": fixture.secret,
            ]))
        #expect(try fixture.verify(wider.accessToken).scopes == ["write", "admin"])
    }

    @Test("RFC 6749 §5.2: invalid_request, invalid_client, unsupported_grant_type, unauthorized_client, invalid_scope")
    func errors() async throws {
        let fixture = try EndpointFixture()
        defer { fixture.folder.remove() }
        let auth = basic("svc", fixture.secret)
        await fixture.expectError(.invalidRequest, [:], authorization: auth)
        await fixture.expectError(.invalidClient, ["grant_type": "client_credentials"], authorization: basic("svc", "wrong"))
        await fixture.expectError(.unsupportedGrantType, ["grant_type": "implicit"], authorization: auth)
        await fixture.expectError(.unsupportedGrantType, ["grant_type": "authorization_code"], authorization: auth)  // no handler registered yet
        await fixture.expectError(.unauthorizedClient, ["grant_type": "client_credentials", "client_id": "app"])
        await fixture.expectError(.invalidScope, ["grant_type": "client_credentials", "scope": "delete"], authorization: auth)
        await fixture.expectError(.invalidScope, ["grant_type": "client_credentials", "scope": "read  write"], authorization: auth)
        await fixture.expectError(.invalidScope, ["grant_type": "client_credentials", "scope": ""], authorization: auth)
        await fixture.expectError(.invalidRequest, ["grant_type": "refresh_token"], authorization: auth)
    }

    @Test("RFC 6749 §6: refresh rotates, narrows the access-token scope, keeps sub and auth_time; reuse is invalid_grant and revokes the family")
    func refresh() async throws {
        let fixture = try EndpointFixture()
        defer { fixture.folder.remove() }
        let authTime = fixture.clock.now - 120
        let first = try await fixture.store.issue(
            NewRefreshTokenFamily(clientID: "app", subject: "alice", scope: ["read", "write"], authTime: authTime))
        fixture.clock.advance(60)
        let response = try await fixture.endpoint.handle(
            TokenRequest(parameters: [
                "grant_type": "refresh_token", "refresh_token": first.token.rawValue, "client_id": "app", "scope": "write",
            ]))
        let successor = try #require(response.refreshToken)
        #expect(successor != first.token.rawValue && response.scope == "write")
        let token = try fixture.verify(response.accessToken)
        #expect(token.subject == "alice" && token.clientID == "app" && token.scopes == ["write"])
        #expect(token.authTime == authTime)

        let next = try await fixture.endpoint.handle(
            TokenRequest(parameters: ["grant_type": "refresh_token", "refresh_token": successor, "client_id": "app"]))
        #expect(next.scope == "read write")
        await fixture.expectError(
            .invalidScope, ["grant_type": "refresh_token", "refresh_token": next.refreshToken!, "client_id": "app", "scope": "admin"])
        // Replaying a rotated-away token: invalid_grant, the family is revoked, the reuse is reported.
        await fixture.expectError(.invalidGrant, ["grant_type": "refresh_token", "refresh_token": successor, "client_id": "app"])
        #expect(fixture.reuses.count == 1)
        await fixture.expectError(.invalidGrant, ["grant_type": "refresh_token", "refresh_token": next.refreshToken!, "client_id": "app"])
        // Another client's token, or garbage: invalid_grant too.
        let other = try await fixture.store.issue(NewRefreshTokenFamily(clientID: "app", subject: "bob", scope: ["read"], authTime: authTime))
        await fixture.expectError(
            .invalidGrant, ["grant_type": "refresh_token", "refresh_token": other.token.rawValue], authorization: basic("svc", fixture.secret))
        await fixture.expectError(.invalidGrant, ["grant_type": "refresh_token", "refresh_token": "tsr_garbage", "client_id": "app"])
        _ = try await fixture.endpoint.handle(
            TokenRequest(parameters: ["grant_type": "refresh_token", "refresh_token": other.token.rawValue, "client_id": "app"]))
    }
}
