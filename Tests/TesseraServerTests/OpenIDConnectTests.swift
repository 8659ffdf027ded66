import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import TesseraIssuer
import TesseraJOSE
import TesseraTestSupport
import TesseraVerifier
import Testing

@testable import TesseraServer

/// OpenID Connect clients beside the fixture's: `rp` (RS256 ID tokens, may refresh, has a post-logout
/// URI) and `rp2` (ES256 ID tokens), both public with PKCE, and confidential `crp` (no PKCE needed).
enum OIDCClients {
    static let scopes = ["openid", "profile", "email", "address", "phone", "offline_access", "read"]
    static let all: [Client] = [
        Client(
            id: "rp", type: .public, secretDigest: nil, grants: [.authorizationCode, .refreshToken], scopes: scopes, defaultScopes: ["openid"],
            audience: "api", redirectURIs: ["https://rp.example/cb"], postLogoutRedirectURIs: ["https://rp.example/bye"], created: Date()),
        Client(
            id: "rp2", type: .public, secretDigest: nil, grants: [.authorizationCode, .refreshToken], scopes: scopes, defaultScopes: ["openid"],
            audience: "api", redirectURIs: ["https://rp2.example/cb"], idTokenAlgorithm: "ES256", created: Date()),
    ]
}

extension AuthorizeFixture {
    /// An OpenID Connect authorization request for `client` (`rp` or `rp2`) with PKCE.
    func oidcPath(_ client: String = "rp", scope: String = "openid", pkce: PKCEPair, extra: [(String, String)] = []) -> String {
        authorizePath(client: client, redirect: "https://\(client).example/cb", scope: scope, pkce: pkce, extra: extra)
    }

    /// Exchanges the code of `redirect` (a 303 to the client) and returns the token response.
    func exchangeOIDC(_ client: any TestClientProtocol, _ redirect: Reply, clientID: String = "rp", pkce: PKCEPair) async throws -> Reply {
        let code = try #require(redirect.callback["code"], "no code in \(redirect.location ?? "-")")
        return try await exchange(client, code: code, verifier: pkce.verifier, redirect: "https://\(clientID).example/cb", clientID: clientID)
    }

    var alice: User { get throws { try #require(try UserStore(dataPath: server.service.configuration.dataPath).users().named("alice")) } }
}

/// The claims and header of a compact JWS, after checking its signature against the server's JWKS.
func verifiedJWT(_ token: String, _ client: any TestClientProtocol) async throws -> (header: JWSHeader, claims: JSONObject) {
    let jwks = try await get(client, "/.well-known/jwks.json")
    let keys = try VerificationKeySet(jwks: try JWKSet(json: jwks.body))
    let verified = try UnverifiedJWS(parsing: token).verified(using: keys)
    return (verified.header, try verified.payloadObject())
}

func int(_ value: JSONValue?) -> Int64? { value?.numberValue?.int64Value }

@Suite("OpenID Connect Core: ID tokens, SSO, prompt, max_age, claims, refresh")
struct OpenIDConnectTests {
    @Test(
        "Core §2, §3.1.3.6, §3.1.3.7: the code exchange returns an RS256 ID token (typ JWT) with iss, sub, aud, exp, iat, auth_time, nonce, at_hash, sid, amr"
    )
    func idTokenClaims() async throws {
        try await AuthorizeFixture.play(extra: OIDCClients.all) { fixture, client, browser in
            let pkce = PKCEPair()
            let nonce = "n-0S6_WzA2Mj ü&="
            let redirect = try await fixture.authorize(browser, fixture.oidcPath(pkce: pkce, extra: [("nonce", nonce)]))
            let tokens = try await fixture.exchangeOIDC(client, redirect, pkce: pkce)
            #expect(tokens.status == .ok && tokens.string("scope") == "openid")
            // Core §11: no offline_access, no refresh token for an OpenID Connect grant.
            #expect(tokens.string("refresh_token") == nil)
            let accessToken = try #require(tokens.string("access_token"))
            let (header, claims) = try await verifiedJWT(try #require(tokens.string("id_token")), client)
            #expect(header.algorithm == .rs256 && header.type == "JWT")
            let alice = try fixture.alice
            #expect(claims["iss"]?.stringValue == PlayedBrowser.origin && claims["aud"]?.stringValue == "rp")
            #expect(claims["sub"]?.stringValue == alice.subject && claims["sub"]?.stringValue != "alice")
            #expect(claims["nonce"]?.stringValue == nonce)  // echoed byte for byte
            #expect(claims["at_hash"]?.stringValue == Base64URL.encode(Digest.sha256(Array(accessToken.utf8)).prefix(16)))
            let now = Int64(fixture.clock.now.timeIntervalSince1970)
            #expect(int(claims["iat"]) == now && int(claims["exp"]) == now + 600 && int(claims["auth_time"]) == now)
            #expect((claims["sid"]?.stringValue ?? "").count == 22 && claims["amr"] == .array([.string("pwd")]) && claims["azp"] == nil)
            // Only the required claims without a claims request: nothing of the profile.
            #expect(claims["email"] == nil && claims["preferred_username"] == nil)
            // The access token's sub is the same identifier.
            let access = try await verifiedJWT(accessToken, client).claims
            #expect(access["sub"] == claims["sub"])
        }
    }

    @Test("Core §3.1.2.1: without nonce the ID token has none; RFC 9068 §4: the verifier refuses an ID token as an access token (typ)")
    func noNonceAndNoConfusion() async throws {
        try await AuthorizeFixture.play(extra: OIDCClients.all) { fixture, client, browser in
            let pkce = PKCEPair()
            let tokens = try await fixture.exchangeOIDC(client, try await fixture.authorize(browser, fixture.oidcPath(pkce: pkce)), pkce: pkce)
            let idToken = try #require(tokens.string("id_token"))
            #expect(try await verifiedJWT(idToken, client).claims["nonce"] == nil)
            let jwks = try await get(client, "/.well-known/jwks.json")
            let keys = try VerificationKeySet(jwks: try JWKSet(json: jwks.body))
            var configuration = AccessTokenVerifier.Configuration(issuer: PlayedBrowser.origin, audience: "rp")
            configuration.leeway = 5
            #expect(throws: TokenVerificationError.self) {
                try AccessTokenVerifier(configuration: configuration, keys: keys).verify(idToken, using: keys)
            }
            // …and the access token is never an id_token_hint.
            let asHint = try await browser.open(
                fixture.oidcPath(pkce: pkce, extra: [("prompt", "none"), ("id_token_hint", try #require(tokens.string("access_token")))]))
            #expect(asHint.callback["error"] == "invalid_request")
        }
    }

    @Test("Core §3.1.3.6: at_hash is the left half of SHA-256 for RS256 and ES256 (Core A.3 vector), SHA-384 and SHA-512 for the others")
    func atHashVectors() {
        // OpenID Connect Core 1.0, Appendix A.3: this access token has at_hash 77QmUPtjPfzWtF2AnpK9RQ.
        let token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
        #expect(JWSAlgorithm.rs256.leftHalfHash(of: token) == "77QmUPtjPfzWtF2AnpK9RQ")
        #expect(JWSAlgorithm.es256.leftHalfHash(of: token) == "77QmUPtjPfzWtF2AnpK9RQ")
        #expect(JWSAlgorithm.es384.leftHalfHash(of: token) == Base64URL.encode(Digest.sha384(Array(token.utf8)).prefix(24)))
        #expect(JWSAlgorithm.ps512.leftHalfHash(of: token) == Base64URL.encode(Digest.sha512(Array(token.utf8)).prefix(32)))
    }

    @Test("A client registered for ES256 ID tokens gets them signed ES256, with an ES256 at_hash")
    func es256IDToken() async throws {
        try await AuthorizeFixture.play(extra: OIDCClients.all) { fixture, client, browser in
            let pkce = PKCEPair()
            let redirect = try await fixture.authorize(browser, fixture.oidcPath("rp2", pkce: pkce))
            let tokens = try await fixture.exchangeOIDC(client, redirect, clientID: "rp2", pkce: pkce)
            let (header, claims) = try await verifiedJWT(try #require(tokens.string("id_token")), client)
            #expect(header.algorithm == .es256 && claims["aud"]?.stringValue == "rp2")
            #expect(claims["at_hash"]?.stringValue == JWSAlgorithm.es256.leftHalfHash(of: try #require(tokens.string("access_token"))))
        }
    }

    @Test("Core §12.2, §11: with offline_access a refresh returns a new ID token: same sub, aud, auth_time, sid; new iat; no nonce")
    func refreshIDToken() async throws {
        try await AuthorizeFixture.play(extra: OIDCClients.all) { fixture, client, browser in
            let pkce = PKCEPair()
            let redirect = try await fixture.authorize(
                browser, fixture.oidcPath(scope: "openid offline_access", pkce: pkce, extra: [("nonce", "n1")]))
            let tokens = try await fixture.exchangeOIDC(client, redirect, pkce: pkce)
            let first = try await verifiedJWT(try #require(tokens.string("id_token")), client).claims
            fixture.clock.advance(120)
            let refreshed = try await post(
                client, "/token",
                formEncode([("grant_type", "refresh_token"), ("refresh_token", try #require(tokens.string("refresh_token"))), ("client_id", "rp")]))
            #expect(refreshed.status == .ok)
            let second = try await verifiedJWT(try #require(refreshed.string("id_token")), client).claims
            for name in ["sub", "aud", "auth_time", "sid", "iss", "amr"] { #expect(second[name] == first[name], "\(name)") }
            #expect(int(second["iat"]) == int(first["iat"])! + 120 && second["nonce"] == nil && first["nonce"] == .string("n1"))
            #expect(second["at_hash"]?.stringValue == JWSAlgorithm.rs256.leftHalfHash(of: try #require(refreshed.string("access_token"))))
            // A refresh narrowed to a scope without openid gets no ID token.
            let narrowed = try await post(
                client, "/token",
                formEncode([
                    ("grant_type", "refresh_token"), ("refresh_token", try #require(refreshed.string("refresh_token"))), ("client_id", "rp"),
                    ("scope", "offline_access"),
                ]))
            #expect(narrowed.status == .ok && narrowed.string("id_token") == nil)
        }
    }

    @Test("Core §3.1.2.1, single sign-on: a second client gets its code without a password; consent is per client; auth_time is the first sign-in")
    func singleSignOn() async throws {
        try await AuthorizeFixture.play(extra: OIDCClients.all) { fixture, client, browser in
            let pkce = PKCEPair()
            let first = try await fixture.exchangeOIDC(client, try await fixture.authorize(browser, fixture.oidcPath(pkce: pkce)), pkce: pkce)
            let signedInAt = int(try await verifiedJWT(try #require(first.string("id_token")), client).claims["auth_time"])
            fixture.clock.advance(300)
            let consent = try await browser.open(fixture.oidcPath("rp2", pkce: pkce))
            #expect(consent.body.contains("<h1>Allow access?</h1>") && !consent.body.contains(#"type="password""#))
            let redirect = try await browser.submit(try #require(consent.forms.first), button: "allow")
            let second = try await fixture.exchangeOIDC(client, redirect, clientID: "rp2", pkce: pkce)
            let claims = try await verifiedJWT(try #require(second.string("id_token")), client).claims
            #expect(int(claims["auth_time"]) == signedInAt && int(claims["iat"]) == signedInAt! + 300)
        }
    }

    @Test("Core §3.1.2.1 max_age: a sign-in older than max_age asks for the password again (auth_time moves); max_age=0 always does")
    func maxAge() async throws {
        try await AuthorizeFixture.play(extra: OIDCClients.all) { fixture, client, browser in
            let pkce = PKCEPair()
            _ = try await fixture.authorize(browser, fixture.oidcPath(pkce: pkce), remember: true)
            fixture.clock.advance(100)
            // Recent enough: straight to the code (consent remembered: a public client with an https redirect URI).
            let recent = try await browser.open(fixture.oidcPath(pkce: pkce, extra: [("max_age", "100")]))
            #expect(recent.status == .seeOther && recent.callback["code"] != nil)
            let stale = try await browser.open(fixture.oidcPath(pkce: pkce, extra: [("max_age", "99")]))
            #expect(stale.body.contains("<h1>Sign in</h1>"))
            let signedIn = try await browser.submit(
                try #require(stale.forms.first), button: "sign_in", ["username": "alice", "password": AuthorizeFixture.password])
            let tokens = try await fixture.exchangeOIDC(client, signedIn, pkce: pkce)
            #expect(
                int(try await verifiedJWT(try #require(tokens.string("id_token")), client).claims["auth_time"])
                    == Int64(fixture.clock.now.timeIntervalSince1970))
            #expect(try await browser.open(fixture.oidcPath(pkce: pkce, extra: [("max_age", "0")])).body.contains("<h1>Sign in</h1>"))
            #expect(try await browser.open(fixture.oidcPath(pkce: pkce, extra: [("max_age", "-1")])).callback["error"] == "invalid_request")
            // prompt=none with an expired max_age: login_required, no page.
            let none = try await browser.open(fixture.oidcPath(pkce: pkce, extra: [("max_age", "0"), ("prompt", "none")]))
            #expect(
                none.status == .seeOther && none.callback["error"] == "login_required"
                    && none.callback["error_description"] == "the sign-in is older than max_age")
        }
    }

    @Test(
        "Core §3.1.2.1 prompt: none (login_required, consent_required, a code), login, consent, select_account; none with another is invalid_request")
    func promptValues() async throws {
        try await AuthorizeFixture.play(extra: OIDCClients.all) { fixture, client, browser in
            let pkce = PKCEPair()
            func open(_ prompt: String) async throws -> Reply { try await browser.open(fixture.oidcPath(pkce: pkce, extra: [("prompt", prompt)])) }
            let anonymous = try await open("none")
            #expect(anonymous.status == .seeOther && anonymous.callback["error"] == "login_required" && anonymous.callback["state"] == "s-1")
            _ = try await fixture.authorize(browser, fixture.oidcPath("rp2", pkce: pkce))  // signed in, consent given to rp2 only
            #expect(try await open("none").callback["error"] == "consent_required")
            _ = try await fixture.authorize(browser, fixture.oidcPath(pkce: pkce), remember: true)
            let silent = try await open("none")
            #expect(silent.status == .seeOther && silent.callback["code"] != nil)
            #expect(try await open("login").body.contains("<h1>Sign in</h1>"))
            #expect(try await open("select_account").body.contains("<h1>Sign in</h1>"))
            #expect(try await open("consent").body.contains("<h1>Allow access?</h1>"))
            #expect(try await open("none login").callback["error"] == "invalid_request")
            #expect(try await open("bogus").callback["error"] == "invalid_request")
        }
    }

    @Test(
        "Core §3.1.2.1 id_token_hint: the signed-in user's hint gets a code under prompt=none; another user's gets login_required; a forged one invalid_request"
    )
    func idTokenHint() async throws {
        try await AuthorizeFixture.play(extra: OIDCClients.all) { fixture, client, browser in
            try UserStore(dataPath: fixture.server.service.configuration.dataPath).add("bob", password: AuthorizeFixture.password, now: Date())
            let pkce = PKCEPair()
            let tokens = try await fixture.exchangeOIDC(
                client, try await fixture.authorize(browser, fixture.oidcPath(pkce: pkce), remember: true), pkce: pkce)
            let aliceHint = try #require(tokens.string("id_token"))
            let same = try await browser.open(fixture.oidcPath(pkce: pkce, extra: [("prompt", "none"), ("id_token_hint", aliceHint)]))
            #expect(same.callback["code"] != nil)
            // Bob signs in on another browser and gets an ID token; alice's browser shows it as a hint.
            let bobBrowser = PlayedBrowser(client)
            var page = try await bobBrowser.open(fixture.oidcPath(pkce: pkce))
            page = try await bobBrowser.submit(
                try #require(page.forms.first), button: "sign_in", ["username": "bob", "password": AuthorizeFixture.password])
            let bobTokens = try await fixture.exchangeOIDC(
                client, try await bobBrowser.submit(try #require(page.forms.first), button: "allow"), pkce: pkce)
            let bobHint = try #require(bobTokens.string("id_token"))
            let other = try await browser.open(fixture.oidcPath(pkce: pkce, extra: [("prompt", "none"), ("id_token_hint", bobHint)]))
            #expect(
                other.status == .seeOther && other.callback["error"] == "login_required"
                    && other.callback["error_description"] == "the user signed in is not the one id_token_hint names")
            // Interactive: the hinted user must sign in (the page, not a code for alice).
            #expect(try await browser.open(fixture.oidcPath(pkce: pkce, extra: [("id_token_hint", bobHint)])).body.contains("<h1>Sign in</h1>"))
            var forged = bobHint.split(separator: ".").map(String.init)
            forged[2] = String(forged[2].reversed())
            let refused = try await browser.open(fixture.oidcPath(pkce: pkce, extra: [("id_token_hint", forged.joined(separator: "."))]))
            #expect(refused.callback["error"] == "invalid_request")
        }
    }

    @Test(
        "Core §5.5 claims parameter: id_token members reach the ID token, userinfo members UserInfo; essential accepted; value refused; consent names them"
    )
    func claimsParameter() async throws {
        try await AuthorizeFixture.play(extra: OIDCClients.all) { fixture, client, browser in
            let users = UserStore(dataPath: fixture.server.service.configuration.dataPath)
            try users.set("alice", claims: ["email=alice@example.com", "email_verified=true", "name=Alice Liddell"], now: Date())
            let pkce = PKCEPair()
            let request = #"{"id_token":{"email":{"essential":true},"unknown_claim":null},"userinfo":{"name":null},"other":{}}"#
            let consent = try await browser.open(fixture.oidcPath(pkce: pkce, extra: [("claims", request)]))
            let signedIn = try await browser.submit(
                try #require(consent.forms.first), button: "sign_in", ["username": "alice", "password": AuthorizeFixture.password])
            // The consent page says in plain words what goes: who you are, the email address, the profile (name).
            #expect(signedIn.body.contains("your email address") && signedIn.body.contains("your name and profile"))
            let tokens = try await fixture.exchangeOIDC(
                client, try await browser.submit(try #require(signedIn.forms.first), button: "allow"), pkce: pkce)
            let claims = try await verifiedJWT(try #require(tokens.string("id_token")), client).claims
            #expect(claims["email"]?.stringValue == "alice@example.com" && claims["name"] == nil && claims["unknown_claim"] == nil)
            let info = try await get(client, "/userinfo", headers: [.authorization: "Bearer " + (try #require(tokens.string("access_token")))])
            #expect(info.status == .ok && info.string("name") == "Alice Liddell" && info.string("email") == nil)
            for bad in [
                #"{"userinfo":{"name":{"value":"x"}}}"#, #"{"userinfo":["name"]}"#, "not json", #"{"id_token":{"email":{"essential":"yes"}}}"#,
            ] {
                let refused = try await browser.open(fixture.oidcPath(pkce: pkce, extra: [("claims", bad)]))
                #expect(refused.callback["error"] == "invalid_request", "\(bad)")
            }
        }
    }

    @Test("Core §3.1.2.6, §6: request and request_uri are not supported; id_token and code id_token stay unsupported_response_type")
    func unsupportedRequests() async throws {
        try await AuthorizeFixture.play(extra: OIDCClients.all) { fixture, _, browser in
            let pkce = PKCEPair()
            #expect(
                try await browser.open(fixture.oidcPath(pkce: pkce, extra: [("request", "eyJ.eyJ.")])).callback["error"] == "request_not_supported")
            #expect(
                try await browser.open(fixture.oidcPath(pkce: pkce, extra: [("request_uri", "https://rp.example/r")])).callback["error"]
                    == "request_uri_not_supported")
            for type in ["id_token", "code id_token", "id_token token"] {
                let path =
                    "/authorize?"
                    + formEncode([
                        ("response_type", type), ("client_id", "rp"), ("redirect_uri", "https://rp.example/cb"), ("scope", "openid"), ("nonce", "n"),
                    ])
                #expect(try await browser.open(path).callback["error"] == "unsupported_response_type", "\(type)")
            }
            // Accepted without error: display, ui_locales, acr_values, login_hint (which fills in the username).
            let page = try await browser.open(
                fixture.oidcPath(
                    pkce: pkce, extra: [("display", "page"), ("ui_locales", "fr-CA en"), ("acr_values", "urn:x"), ("login_hint", "alice")]))
            #expect(page.status == .ok && page.body.contains(#"value="alice""#))
        }
    }
}
