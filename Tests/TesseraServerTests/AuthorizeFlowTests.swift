import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import TesseraIssuer
import TesseraJOSE
import TesseraTestSupport
import TesseraVerifier
import Testing

@testable import TesseraServer

@Suite("/authorize: sign-in, consent and the code, played as a browser over loopback")
struct AuthorizeFlowTests {
    @Test("RFC 6749 §4.1, RFC 7636, RFC 9207: sign in, consent, code with state and iss; the exchange gives tokens that verify")
    func success() async throws {
        try await AuthorizeFixture.play { fixture, client, browser in
            let pkce = PKCEPair()
            let signIn = try await browser.open(fixture.authorizePath(pkce: pkce))
            #expect(signIn.body.contains("to continue to <strong>web</strong>"))
            // The session cookie: HttpOnly, SameSite=Lax, not Secure for a plain-http loopback issuer.
            let setCookie = try #require(signIn.headers[.setCookie])
            #expect(
                setCookie.hasPrefix("tessera-session=tbs_") && setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Lax")
                    && !setCookie.contains("Secure"))
            let before = browser.cookies["tessera-session"]
            let consent = try await browser.submit(
                try #require(signIn.forms.first), button: "sign_in", ["username": "alice", "password": AuthorizeFixture.password])
            #expect(
                consent.body.contains("<code>read</code>") && consent.body.contains("<code>write</code>")
                    && consent.body.contains("<strong>alice</strong>"))
            // A new session id after sign-in (no session fixation).
            #expect(browser.cookies["tessera-session"] != nil && browser.cookies["tessera-session"] != before)
            let redirect = try await browser.submit(try #require(consent.forms.first), button: "allow")
            // THREATS B19: 303, never 307, after a form post.
            #expect(redirect.status == .seeOther && redirect.location?.hasPrefix("https://web.example/cb?code=tac_") == true)
            #expect(redirect.headers[.cacheControl] == "no-store")
            let callback = redirect.callback
            #expect(callback["state"] == "s-1" && callback["iss"] == PlayedBrowser.origin)
            let tokens = try await fixture.exchange(client, code: try #require(callback["code"]), verifier: pkce.verifier)
            #expect(tokens.status == .ok && tokens.string("scope") == "read write" && tokens.string("refresh_token")?.hasPrefix("tsr_") == true)
            let jwks = try await get(client, "/.well-known/jwks.json")
            var configuration = AccessTokenVerifier.Configuration(issuer: PlayedBrowser.origin, audience: "api")
            configuration.leeway = 5
            let keys = try VerificationKeySet(jwks: try JWKSet(json: jwks.body))
            let token = try AccessTokenVerifier(configuration: configuration, keys: keys).verify(
                try #require(tokens.string("access_token")), using: keys)
            let alice = try #require(try UserStore(dataPath: fixture.server.service.configuration.dataPath).users().named("alice"))
            #expect(token.subject == alice.subject && token.clientID == "web" && token.scopes == ["read", "write"])
            // The refresh token works for this public client.
            let refreshed = try await post(
                client, "/token",
                formEncode([
                    ("grant_type", "refresh_token"), ("client_id", "web"),
                    ("refresh_token", try #require(tokens.string("refresh_token"))),
                ]))
            #expect(refreshed.status == .ok)
        }
    }

    @Test("THREATS B17, B20: every page has no-store, no-referrer, frame-ancestors 'none', X-Frame-Options DENY, and loads nothing from elsewhere")
    func pageHeaders() async throws {
        try await AuthorizeFixture.play { fixture, client, browser in
            let signIn = try await browser.open(fixture.authorizePath())
            let consent = try await browser.submit(
                try #require(signIn.forms.first), button: "sign_in", ["username": "alice", "password": AuthorizeFixture.password])
            let error = try await browser.open("/authorize?client_id=nobody")
            for page in [signIn, consent, error] {
                #expect(page.headers[.contentType] == "text/html; charset=utf-8" && page.headers[.cacheControl] == "no-store")
                #expect(
                    page.headers[HTTPField.Name("Referrer-Policy")!] == "no-referrer" && page.headers[HTTPField.Name("X-Frame-Options")!] == "DENY")
                let policy = try #require(page.headers[HTTPField.Name("Content-Security-Policy")!])
                #expect(policy.contains("frame-ancestors 'none'") && policy.contains("default-src 'none'"))
                #expect(!page.body.contains("<script") && !page.body.contains("src=") && !page.body.contains("http-equiv"))
                #expect(page.body.contains(#"<meta name="viewport" content="width=device-width, initial-scale=1">"#))
            }
            // Form posts may go here, and to the client's redirect URI origin (the 303 after a post).
            #expect(consent.headers[HTTPField.Name("Content-Security-Policy")!]?.contains("form-action 'self' https://web.example;") == true)
        }
    }

    @Test("A wrong password shows the sign-in page again with an error and no redirect; the right one then works")
    func wrongPassword() async throws {
        try await AuthorizeFixture.play { fixture, client, browser in
            let signIn = try await browser.open(fixture.authorizePath())
            let again = try await browser.submit(
                try #require(signIn.forms.first), button: "sign_in", ["username": "alice", "password": "wrong password"])
            #expect(again.status == .ok && again.location == nil && again.body.contains("The username or password is wrong."))
            #expect(again.body.contains(#"value="alice""#) && !again.body.contains("wrong password"))
            let unknown = try await browser.submit(
                try #require(again.forms.first), button: "sign_in", ["username": "mallory", "password": "whatever1"])
            #expect(unknown.body.contains("The username or password is wrong."))
            let consent = try await browser.submit(
                try #require(unknown.forms.first), button: "sign_in", ["username": "alice", "password": AuthorizeFixture.password])
            #expect(consent.body.contains("<h1>Allow access?</h1>"))
        }
    }

    @Test("RFC 6749 §10.12, THREATS B9: a sign-in or consent post without the CSRF token, with another one, or without the session cookie is 403")
    func csrf() async throws {
        try await AuthorizeFixture.play { fixture, client, browser in
            let signIn = try await browser.open(fixture.authorizePath())
            let form = try #require(signIn.forms.first)
            let credentials = ["username": "alice", "password": AuthorizeFixture.password]
            let missing = try await browser.submit(form, button: "sign_in", credentials, dropping: ["csrf_token"])
            #expect(missing.status == .forbidden && missing.location == nil && !missing.body.contains("Allow access"))
            let wrong = try await browser.submit(
                form, button: "sign_in", credentials.merging(["csrf_token": Base64URL.encode(try SecureRandom.bytes(count: 32))]) { $1 })
            #expect(wrong.status == .forbidden)
            // Another browser (no cookie) posting this form: the attacker's page cannot send the victim's session.
            let other = PlayedBrowser(client)
            let forged = try await other.submit(form, button: "sign_in", credentials)
            #expect(forged.status == .forbidden)
            // The consent form likewise.
            let consent = try await browser.submit(form, button: "sign_in", credentials)
            let consentForm = try #require(consent.forms.first)
            let forgedAllow = try await browser.submit(consentForm, button: "allow", dropping: ["csrf_token"])
            #expect(forgedAllow.status == .forbidden && forgedAllow.location == nil)
            let allowed = try await browser.submit(consentForm, button: "allow")
            #expect(allowed.status == .seeOther && allowed.callback["code"] != nil)
        }
    }

    @Test("RFC 6749 §4.1.2.1: consent denied, or sign-in cancelled, redirects with access_denied, state and iss")
    func denied() async throws {
        try await AuthorizeFixture.play { fixture, client, browser in
            let signIn = try await browser.open(fixture.authorizePath(state: "deny-me"))
            let consent = try await browser.submit(
                try #require(signIn.forms.first), button: "sign_in", ["username": "alice", "password": AuthorizeFixture.password])
            let denied = try await browser.submit(try #require(consent.forms.first), button: "deny")
            #expect(denied.status == .seeOther && denied.callback["error"] == "access_denied")
            #expect(denied.callback["state"] == "deny-me" && denied.callback["iss"] == PlayedBrowser.origin && denied.callback["code"] == nil)
            // The request is finished: its form cannot be used again.
            let again = try await browser.submit(try #require(consent.forms.first), button: "allow")
            #expect(again.status == .badRequest && again.location == nil)
            let second = try await PlayedBrowser(client).open(fixture.authorizePath(state: "cancel-me"))
            let cancelled = try await browser.submit(try #require(second.forms.first), button: "cancel")
            #expect(cancelled.status == .forbidden)  // the form belongs to the other browser's session
            let mine = try await browser.open(fixture.authorizePath(state: "cancel-me", extra: [("prompt", "login")]))
            let cancel = try await browser.submit(try #require(mine.forms.first), button: "cancel")
            #expect(cancel.callback["error"] == "access_denied" && cancel.callback["state"] == "cancel-me")
        }
    }

    @Test(
        "THREATS B1, B3: every near-miss of a registered redirect URI gets an error page, status 400, and no Location; RFC 8252 §7.3 loopback ports")
    func redirectURIs() async throws {
        try await AuthorizeFixture.play { fixture, client, browser in
            let nearMisses = [
                "https://web.example/cb/", "https://web.example/CB", "https://web.example/cb?x=1", "https://web.example/cb#f",
                "https://web.example/cb/../evil", "https://web.example.evil/cb", "https://web.example@evil.example/cb",
                "http://web.example/cb", "https://web.example%2Fcb", "https://web.example/cb%2F", "https://WEB.example/cb",
                "https://web.example:443/cb", "https://evil.example/cb", "", "http://127.0.0.1.evil/native/cb",
                "http://127.0.0.1:8080@evil.example/native/cb", "http://localhost:5000/native/cb", "http://127.0.0.1:99999/native/cb",
                "http://127.0.0.1:5000/native/cb/", "http://127.0.0.2:5000/native/cb", "http://[::1]:5000/native/cb",
            ]
            for uri in nearMisses {
                let reply = try await browser.open(fixture.authorizePath(redirect: uri))
                #expect(reply.status == .badRequest && reply.location == nil, "\(uri) → \(reply.status)")
                #expect(reply.body.contains("redirect_uri is not registered"), "\(uri)")
            }
            for path in [
                "/authorize?response_type=code&client_id=nobody&redirect_uri=https%3A%2F%2Fevil.example%2F&state=x",
                "/authorize?response_type=token&redirect_uri=https%3A%2F%2Fevil.example%2F",
            ] {
                let reply = try await browser.open(path)
                #expect(reply.status == .badRequest && reply.location == nil && reply.body.contains("unknown or missing client_id"))
            }
            // Two registered URIs: redirect_uri is required.
            let omitted = try await browser.open(fixture.authorizePath(redirect: nil))
            #expect(omitted.status == .badRequest && omitted.location == nil)
            // A registered loopback IP URI takes any port (RFC 8252 §7.3); the redirect goes to the port sent.
            let pkce = PKCEPair()
            let native = try await fixture.authorize(browser, fixture.authorizePath(redirect: "http://127.0.0.1:51234/native/cb", pkce: pkce))
            #expect(native.location?.hasPrefix("http://127.0.0.1:51234/native/cb?code=") == true)
            let tokens = try await fixture.exchange(
                client, code: try #require(native.callback["code"]), verifier: pkce.verifier,
                redirect: "http://127.0.0.1:51234/native/cb")
            #expect(tokens.status == .ok)
        }
    }

    @Test("RFC 7636 §4.4.1, THREATS B6–B8: PKCE missing for a public client, plain, or a wrong verifier is refused")
    func pkce() async throws {
        let plainClient = Client(
            id: "legacy", type: .public, secretDigest: nil, grants: [.authorizationCode], scopes: ["read"], defaultScopes: ["read"],
            audience: "api", redirectURIs: ["https://legacy.example/cb"], pkcePlainAllowed: true, created: Date())
        try await AuthorizeFixture.play(extra: [plainClient]) { fixture, client, browser in
            let missing = try await browser.open(fixture.authorizePath(pkce: nil))
            #expect(missing.status == .seeOther && missing.callback["error"] == "invalid_request" && missing.callback["state"] == "s-1")
            #expect(missing.callback["iss"] == PlayedBrowser.origin)
            let verifier = PKCEPair().verifier
            let plain = try await browser.open(
                fixture.authorizePath(pkce: nil, extra: [("code_challenge", verifier), ("code_challenge_method", "plain")]))
            #expect(plain.callback["error"] == "invalid_request")
            let lowercase = try await browser.open(
                fixture.authorizePath(pkce: nil, extra: [("code_challenge", PKCEPair().challenge), ("code_challenge_method", "s256")]))
            #expect(lowercase.callback["error"] == "invalid_request")
            // The right pair works; a wrong or a missing verifier does not, and spends the code.
            for wrong in [PKCEPair().verifier, nil] {
                let pkce = PKCEPair()
                let redirect = try await fixture.authorize(browser, fixture.authorizePath(pkce: pkce))
                let code = try #require(redirect.callback["code"])
                let refused = try await fixture.exchange(client, code: code, verifier: wrong)
                #expect(refused.status == .badRequest && refused.error == "invalid_grant")
                let late = try await fixture.exchange(client, code: code, verifier: pkce.verifier)
                #expect(late.error == "invalid_grant")
            }
            // A client registered for plain may use it.
            let legacy = try await fixture.authorize(
                browser,
                fixture.authorizePath(
                    client: "legacy", redirect: "https://legacy.example/cb", scope: "read", pkce: nil,
                    extra: [("code_challenge", verifier), ("code_challenge_method", "plain")]))
            let tokens = try await fixture.exchange(
                client, code: try #require(legacy.callback["code"]), verifier: verifier,
                redirect: "https://legacy.example/cb", clientID: "legacy")
            #expect(tokens.status == .ok)
        }
    }

    @Test("RFC 6749 §4.1.2, THREATS B4: a code used twice fails the second time and revokes the tokens issued from it")
    func replay() async throws {
        try await AuthorizeFixture.play { fixture, client, browser in
            let pkce = PKCEPair()
            let redirect = try await fixture.authorize(browser, fixture.authorizePath(pkce: pkce))
            let code = try #require(redirect.callback["code"])
            let first = try await fixture.exchange(client, code: code, verifier: pkce.verifier)
            #expect(first.status == .ok)
            let accessToken = try #require(first.string("access_token"))
            let refreshToken = try #require(first.string("refresh_token"))
            let active = try await post(client, "/introspect", "token=\(accessToken)", authorization: fixture.server.basicAuth)
            #expect(active.json["active"] == .bool(true))
            let second = try await fixture.exchange(client, code: code, verifier: pkce.verifier)
            #expect(second.status == .badRequest && second.error == "invalid_grant")
            let inactive = try await post(client, "/introspect", "token=\(accessToken)", authorization: fixture.server.basicAuth)
            #expect(inactive.json["active"] == .bool(false))
            let refresh = try await post(
                client, "/token", formEncode([("grant_type", "refresh_token"), ("client_id", "web"), ("refresh_token", refreshToken)]))
            #expect(refresh.error == "invalid_grant")
        }
    }

    @Test("RFC 6749 §4.1.2, THREATS B5: a code is good for 60 s; at 61 s it is invalid_grant")
    func expiredCode() async throws {
        try await AuthorizeFixture.play { fixture, client, browser in
            for (wait, status) in [(59.0, HTTPResponse.Status.ok), (61, .badRequest)] {
                let pkce = PKCEPair()
                let redirect = try await fixture.authorize(browser, fixture.authorizePath(pkce: pkce))
                fixture.clock.advance(wait)
                let reply = try await fixture.exchange(client, code: try #require(redirect.callback["code"]), verifier: pkce.verifier)
                #expect(reply.status == status, "after \(wait) s")
            }
        }
    }

    @Test("THREATS B9, B10: state is echoed byte for byte (long, URL-special characters) with iss on success and on error")
    func stateAndIss() async throws {
        try await AuthorizeFixture.play { fixture, client, browser in
            let state = "a b+c&d=e%f/g?h#i é 🙂 " + String(repeating: "x", count: 1_900)
            let success = try await fixture.authorize(browser, fixture.authorizePath(state: state))
            #expect(success.callback["state"] == state && success.callback["iss"] == PlayedBrowser.origin)
            let error = try await browser.open(fixture.authorizePath(scope: "admin", state: state))
            #expect(error.callback["error"] == "invalid_scope" && error.callback["state"] == state && error.callback["iss"] == PlayedBrowser.origin)
            let unsupported = try await browser.open(
                fixture.authorizePath(state: state, extra: [("response_type", "code token")]).replacingOccurrences(
                    of: "response_type=code&", with: ""))
            #expect(unsupported.callback["error"] == "unsupported_response_type" && unsupported.callback["state"] == state)
            let none = try await browser.open(fixture.authorizePath(state: nil, extra: [("prompt", "none")]))
            #expect(none.callback["state"] == nil && none.callback["iss"] == PlayedBrowser.origin)
            let metadata = try await get(client, "/.well-known/oauth-authorization-server")
            #expect(
                metadata.json["authorization_response_iss_parameter_supported"] == .bool(true) && metadata.string("issuer") == PlayedBrowser.origin)
        }
    }

    @Test("THREATS B18: response_type=token and hybrid types are unsupported_response_type (no implicit grant)")
    func noImplicit() async throws {
        try await AuthorizeFixture.play { fixture, client, browser in
            for type in ["token", "code token", "id_token", "code id_token", "none", ""] {
                let path =
                    "/authorize?"
                    + formEncode([("response_type", type), ("client_id", "web"), ("redirect_uri", "https://web.example/cb"), ("state", "t")])
                let reply = try await browser.open(path)
                #expect(reply.status == .seeOther && reply.location?.contains("access_token") == false, "\(type)")
                #expect(reply.callback["error"] == "unsupported_response_type" && reply.callback["state"] == "t", "\(type)")
            }
        }
    }

    @Test("OpenID Connect Core §3.1.2.1: remembered consent skips the page; prompt=consent, prompt=login and prompt=none behave")
    func promptsAndRememberedConsent() async throws {
        try await AuthorizeFixture.play { fixture, client, browser in
            let noSession = try await browser.open(fixture.authorizePath(extra: [("prompt", "none")]))
            #expect(noSession.callback["error"] == "login_required")
            // Signed in, not remembered: consent_required without a page.
            _ = try await fixture.authorize(browser, fixture.authorizePath())
            let notRemembered = try await browser.open(fixture.authorizePath(extra: [("prompt", "none")]))
            #expect(notRemembered.callback["error"] == "consent_required")
            // Signed in (the session persists): the next request goes straight to consent.
            let consent = try await browser.open(fixture.authorizePath(scope: "read"))
            #expect(consent.body.contains("<h1>Allow access?</h1>"))
            let remembered = try await browser.submit(try #require(consent.forms.first), button: "allow", ["remember": "on"])
            #expect(remembered.callback["code"] != nil)
            // Remembered for read: no page at all, with or without prompt=none.
            for extra in [[], [("prompt", "none")]] {
                let direct = try await browser.open(fixture.authorizePath(scope: "read", extra: extra))
                #expect(direct.status == .seeOther && direct.callback["code"] != nil, "\(extra)")
            }
            // More scopes than remembered: the page again. prompt=consent: the page even for remembered ones.
            let more = try await browser.open(fixture.authorizePath(scope: "read write"))
            #expect(more.body.contains("<h1>Allow access?</h1>"))
            let forced = try await browser.open(fixture.authorizePath(scope: "read", extra: [("prompt", "consent")]))
            #expect(forced.body.contains("<h1>Allow access?</h1>"))
            // prompt=login: the sign-in page although signed in; then (consent remembered) the code.
            let login = try await browser.open(fixture.authorizePath(scope: "read", extra: [("prompt", "login")]))
            #expect(login.body.contains("<h1>Sign in</h1>"))
            let afterLogin = try await browser.submit(
                try #require(login.forms.first), button: "sign_in", ["username": "alice", "password": AuthorizeFixture.password])
            #expect(afterLogin.status == .seeOther && afterLogin.callback["code"] != nil)
            let contradictory = try await browser.open(fixture.authorizePath(extra: [("prompt", "none login")]))
            #expect(contradictory.callback["error"] == "invalid_request")
            // Another browser has no session: prompt=none there is login_required.
            let stranger = try await PlayedBrowser(client).open(fixture.authorizePath(scope: "read", extra: [("prompt", "none")]))
            #expect(stranger.callback["error"] == "login_required")
            // Removing the user ends their sessions' effect at once.
            _ = try UserStore(dataPath: fixture.server.service.configuration.dataPath).remove("alice")
            let gone = try await browser.open(fixture.authorizePath(scope: "read", extra: [("prompt", "none")]))
            #expect(gone.callback["error"] == "login_required")
            #expect(try ConsentStore(dataPath: fixture.server.service.configuration.dataPath).consents().isEmpty)
        }
    }

    @Test(
        "RFC 6749 §10.10: past 5 failed sign-ins that user from that address gets a 429 page, even with the right password; another user there does not"
    )
    func throttling() async throws {
        let fixture = try AuthorizeFixture()
        defer { fixture.close() }
        try UserStore(dataPath: fixture.server.service.configuration.dataPath).add("bob", password: "bob's long password", now: Date())
        try await fixture.server.run(.live) { client in
            let attacker = PlayedBrowser(client)
            var page = try await attacker.open(fixture.authorizePath())
            for _ in 0..<6 {
                page = try await attacker.submit(try #require(page.forms.first), button: "sign_in", ["username": "bob", "password": "guess-guess"])
            }
            let blocked = try await attacker.submit(
                try #require(page.forms.first), button: "sign_in", ["username": "bob", "password": "bob's long password"])
            #expect(blocked.status == .tooManyRequests && blocked.body.contains("Too many failed sign-ins"))
            // Another user behind the same address is not held back by the guesser (issue 18, item 8).
            let other = PlayedBrowser(client)
            let signIn = try await other.open(fixture.authorizePath())
            let fromSameAddress = try await other.submit(
                try #require(signIn.forms.first), button: "sign_in", ["username": "alice", "password": AuthorizeFixture.password])
            #expect(fromSameAddress.body.contains("<h1>Allow access?</h1>"))
            // The first block is 1 s; once it has passed, bob's right password signs in from that address.
            fixture.clock.advance(1.5)
            let later = try await attacker.submit(
                try #require(blocked.forms.first), button: "sign_in", ["username": "bob", "password": "bob's long password"])
            #expect(later.body.contains("<h1>Allow access?</h1>"))
        }
    }

    @Test("POST /authorize takes the request as a form (RFC 6749 §3.1); repeated parameters are refused (§3.1)")
    func postAndRepeated() async throws {
        try await AuthorizeFixture.play { fixture, client, browser in
            let query = String(fixture.authorizePath().dropFirst("/authorize?".count))
            let posted = try await post(client, "/authorize", query)
            #expect(posted.status == .ok && posted.body.contains("<h1>Sign in</h1>"))
            let repeated = try await browser.open(fixture.authorizePath() + "&client_id=web")
            #expect(repeated.status == .badRequest && repeated.location == nil)
        }
    }

    @Test("The session cookie is Secure with the __Host- prefix unless the issuer is plain http on loopback; redirects carry that issuer as iss")
    func secureCookie() async throws {
        for (issuer, secure) in [
            ("https://login.example", true), ("http://login.example", true), ("http://localhost:8080", false), ("http://127.0.0.1:9000", false),
        ] {
            let server = try ServerFixture(issuer: issuer)
            defer { server.close() }
            try UserStore(dataPath: server.service.configuration.dataPath).add("alice", password: AuthorizeFixture.password, now: Date())
            try await server.run { client in
                let browser = PlayedBrowser(client)
                let pkce = PKCEPair()
                let path =
                    "/authorize?"
                    + formEncode([
                        ("response_type", "code"), ("client_id", "app"), ("code_challenge", pkce.challenge),
                        ("code_challenge_method", "S256"), ("prompt", "none"),
                    ])
                let reply = try await browser.open(path)
                let cookie = try #require(reply.headers[.setCookie])
                #expect(
                    cookie.hasPrefix(secure ? "__Host-tessera-session=" : "tessera-session=") && cookie.hasSuffix("; Secure") == secure, "\(issuer)")
                #expect(reply.callback["error"] == "login_required" && reply.callback["iss"] == issuer)
                // The browser sends the cookie back under that name: the session is recognised (no new cookie).
                let again = try await browser.open(path)
                #expect(again.headers[.setCookie] == nil, "\(issuer)")
            }
        }
    }

    @Test("Pages escape what they show: a scope token with <, > and & and a typed username cannot inject markup")
    func escaping() async throws {
        let odd = Client(
            id: "odd", type: .public, secretDigest: nil, grants: [.authorizationCode], scopes: ["<b>&x'"], defaultScopes: [],
            audience: "api", redirectURIs: ["https://odd.example/cb"], created: Date())
        try await AuthorizeFixture.play(extra: [odd]) { fixture, client, browser in
            let signIn = try await browser.open(fixture.authorizePath(client: "odd", redirect: "https://odd.example/cb", scope: "<b>&x'"))
            let again = try await browser.submit(
                try #require(signIn.forms.first), button: "sign_in", ["username": "\"><i>x</i>", "password": "nope-nope"])
            #expect(again.body.contains("value=\"&quot;&gt;&lt;i&gt;x&lt;/i&gt;\"") && !again.body.contains("<i>x</i>"))
            let consent = try await browser.submit(
                try #require(again.forms.first), button: "sign_in", ["username": "alice", "password": AuthorizeFixture.password])
            #expect(consent.body.contains("<code>&lt;b&gt;&amp;x&#39;</code>") && !consent.body.contains("<b>&x"))
        }
    }
}
