import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import TesseraIssuer
import TesseraJOSE
import TesseraTestSupport
import Testing

@testable import TesseraServer

@Suite("OpenID Connect endpoints: UserInfo, RP-Initiated Logout, Discovery")
struct OpenIDEndpointTests {
    /// Signs alice in for `rp` with `scope` (consent remembered) and returns the token response.
    static func tokens(_ fixture: AuthorizeFixture, _ client: any TestClientProtocol, _ browser: PlayedBrowser, scope: String) async throws -> Reply {
        let pkce = PKCEPair()
        var reply = try await browser.open(fixture.oidcPath(scope: scope, pkce: pkce))
        if reply.body.contains("<h1>Sign in</h1>") {
            reply = try await browser.submit(
                try #require(reply.forms.first), button: "sign_in", ["username": "alice", "password": AuthorizeFixture.password])
        }
        if reply.body.contains("<h1>Allow access?</h1>") {
            reply = try await browser.submit(try #require(reply.forms.first), button: "allow", ["remember": "on"])
        }
        let tokens = try await fixture.exchangeOIDC(client, reply, pkce: pkce)
        try #require(tokens.status == .ok)
        return tokens
    }

    @Test(
        "Core §5.3, §5.4: UserInfo releases sub and the claims of the token's scopes, by GET with the header and POST with the form body (RFC 6750 §2.2)"
    )
    func userInfoByScope() async throws {
        try await AuthorizeFixture.play(extra: OIDCClients.all) { fixture, client, browser in
            try UserStore(dataPath: fixture.server.service.configuration.dataPath).set(
                "alice",
                claims: [
                    "email=alice@example.com", "email_verified=true", "name=Alice Liddell", "phone_number=+44 1865 000000", "address.locality=Oxford",
                    "address.country=UK",
                ], now: Date(timeIntervalSince1970: 1_700_000_000))
            let access = try #require(try await Self.tokens(fixture, client, browser, scope: "openid email").string("access_token"))
            let info = try await get(client, "/userinfo", headers: [.authorization: "Bearer " + access])
            #expect(info.status == .ok && info.headers[.contentType] == "application/json" && info.headers[.cacheControl] == "no-store")
            #expect(
                info.json
                    == JSONObject(["sub": .string(try fixture.alice.subject), "email": .string("alice@example.com"), "email_verified": .bool(true)]))
            // THREATS F8: openid alone releases sub alone.
            let bare = try #require(try await Self.tokens(fixture, client, browser, scope: "openid").string("access_token"))
            #expect(
                try await get(client, "/userinfo", headers: [.authorization: "Bearer " + bare]).json
                    == JSONObject(["sub": .string(try fixture.alice.subject)]))
            let full = try #require(try await Self.tokens(fixture, client, browser, scope: "openid profile address phone").string("access_token"))
            let byPost = try await post(client, "/userinfo", "access_token=" + full)
            #expect(byPost.status == .ok && byPost.string("name") == "Alice Liddell" && byPost.string("preferred_username") == "alice")
            #expect(byPost.json["updated_at"] == .number(JSONNumber(1_700_000_000)) && byPost.string("phone_number") == "+44 1865 000000")
            #expect(
                byPost.json["address"] == .object(JSONObject(["country": .string("UK"), "locality": .string("Oxford")]))
                    && byPost.string("email") == nil)
        }
    }

    @Test(
        "RFC 6750 §3 at UserInfo: no token 401 with a bare challenge; two ways 400; a bad, expired or non-openid token 401/403; a revoked grant or removed user 401"
    )
    func userInfoErrors() async throws {
        try await AuthorizeFixture.play(extra: OIDCClients.all) { fixture, client, browser in
            let none = try await get(client, "/userinfo")
            #expect(none.status == .unauthorized && none.headers[.wwwAuthenticate] == #"Bearer realm="tessera""#)
            let tokens = try await Self.tokens(fixture, client, browser, scope: "openid offline_access")
            let access = try #require(tokens.string("access_token"))
            let both = try await post(client, "/userinfo", "access_token=" + access, authorization: "Bearer " + access)
            #expect(both.status == .badRequest && both.headers[.wwwAuthenticate]?.contains(#"error="invalid_request""#) == true)
            let forged = try await get(client, "/userinfo", headers: [.authorization: "Bearer " + access.dropLast(4) + "AAAA"])
            #expect(forged.status == .unauthorized && forged.error == "invalid_token")
            // An ID token is not an access token (typ JWT, not at+jwt).
            let idToken = try await get(client, "/userinfo", headers: [.authorization: "Bearer " + (try #require(tokens.string("id_token")))])
            #expect(idToken.status == .unauthorized && idToken.error == "invalid_token")
            // A token without openid: 403 insufficient_scope naming the scope.
            let plain = try await get(
                client, "/userinfo",
                headers: [
                    .authorization: "Bearer "
                        + (try #require(
                            try await post(client, "/token", "grant_type=client_credentials", authorization: fixture.server.basicAuth).string(
                                "access_token")))
                ])
            #expect(plain.status == .forbidden && plain.headers[.wwwAuthenticate]?.contains(#"scope="openid""#) == true)
            // The grant revoked (RFC 7009 on its refresh token): its access tokens stop working at UserInfo.
            #expect(
                try await post(client, "/revoke", formEncode([("token", try #require(tokens.string("refresh_token"))), ("client_id", "rp")])).status
                    == .ok)
            let revoked = try await get(client, "/userinfo", headers: [.authorization: "Bearer " + access])
            #expect(revoked.status == .unauthorized && revoked.error == "invalid_token")
            // A removed user, and a new user of the same name (another sub): refused.
            let other = try #require(try await Self.tokens(fixture, client, browser, scope: "openid").string("access_token"))
            let users = UserStore(dataPath: fixture.server.service.configuration.dataPath)
            #expect(try users.remove("alice"))
            try users.add("alice", password: AuthorizeFixture.password, now: Date())
            let removed = try await get(client, "/userinfo", headers: [.authorization: "Bearer " + other])
            #expect(
                removed.status == .unauthorized
                    && removed.string("error_description") == "the access token is not for a user of this server (removed, or a client's own token)")
            fixture.clock.advance(601)
            let expired = try await get(client, "/userinfo", headers: [.authorization: "Bearer " + other])
            #expect(expired.status == .unauthorized && expired.string("error_description") == "the access token has expired")
        }
    }

    @Test("A removed user's access token introspects inactive and their refresh token is refused (its family revoked); a new namesake has a new sub")
    func removedUserRefresh() async throws {
        try await AuthorizeFixture.play(extra: OIDCClients.all) { fixture, client, browser in
            let tokens = try await Self.tokens(fixture, client, browser, scope: "openid offline_access")
            let before = try fixture.alice.subject
            let users = UserStore(dataPath: fixture.server.service.configuration.dataPath)
            let introspect = "token=" + (try #require(tokens.string("access_token")))
            #expect(try await post(client, "/introspect", introspect, authorization: fixture.server.basicAuth).json["active"] == .bool(true))
            #expect(try users.remove("alice"))
            // The removed user's access token is inactive at introspection at once.
            #expect(try await post(client, "/introspect", introspect, authorization: fixture.server.basicAuth).json["active"] == .bool(false))
            try users.add("alice", password: AuthorizeFixture.password, now: Date())
            #expect(try fixture.alice.subject != before)
            let refresh = try await post(
                client, "/token",
                formEncode([("grant_type", "refresh_token"), ("refresh_token", try #require(tokens.string("refresh_token"))), ("client_id", "rp")]))
            #expect(refresh.status == .badRequest && refresh.error == "invalid_grant")
        }
    }

    @Test(
        "RP-Initiated Logout §2–§3: a valid hint ends the session at once (cookie cleared) and redirects with state; the next request asks for the password"
    )
    func logoutWithHint() async throws {
        try await AuthorizeFixture.play(extra: OIDCClients.all) { fixture, client, browser in
            let idToken = try #require(try await Self.tokens(fixture, client, browser, scope: "openid").string("id_token"))
            #expect(browser.cookies["tessera-session"] != nil)
            let out = try await browser.open(
                "/logout?" + formEncode([("id_token_hint", idToken), ("post_logout_redirect_uri", "https://rp.example/bye"), ("state", "st&1")]))
            #expect(out.status == .seeOther && out.location == "https://rp.example/bye?state=st%261")
            #expect(out.headers[.setCookie]?.contains("Max-Age=0") == true && browser.cookies["tessera-session"] == nil)
            #expect((fixture.server.service.sessions as? BrowserSessions)?.count == 0)  // removed on the server, not only in the browser
            #expect(try await browser.open(fixture.oidcPath(pkce: PKCEPair())).body.contains("<h1>Sign in</h1>"))
            // Without a redirect URI: the signed-out page.
            _ = try await Self.tokens(fixture, client, browser, scope: "openid")
            let page = try await browser.open("/logout?" + formEncode([("id_token_hint", idToken), ("client_id", "rp")]))
            #expect(page.status == .ok && page.body.contains("<h1>You are signed out</h1>"))
        }
    }

    @Test(
        "RP-Initiated Logout §2, §3: a forged hint, a hint for another client_id, an unregistered or unnamed redirect URI are refused and change nothing"
    )
    func logoutRefusals() async throws {
        try await AuthorizeFixture.play(extra: OIDCClients.all) { fixture, client, browser in
            let idToken = try #require(try await Self.tokens(fixture, client, browser, scope: "openid").string("id_token"))
            let access = try #require(try await Self.tokens(fixture, client, browser, scope: "openid").string("access_token"))
            let cases: [[(String, String)]] = [
                [("id_token_hint", String(idToken.dropLast(3)) + "AAA")],
                [("id_token_hint", access)],  // an access token is not an ID token
                [("id_token_hint", idToken), ("client_id", "rp2")],
                [("id_token_hint", idToken), ("post_logout_redirect_uri", "https://evil.example/bye")],
                [("id_token_hint", idToken), ("post_logout_redirect_uri", "https://rp.example/bye/")],
                [("post_logout_redirect_uri", "https://rp.example/bye")],  // whose? neither hint nor client_id
                [("client_id", "nobody")],
            ]
            for parameters in cases {
                let refused = try await browser.open("/logout?" + formEncode(parameters))
                #expect(refused.status == .badRequest && refused.location == nil && refused.headers[.setCookie] == nil, "\(parameters.map(\.0))")
            }
            #expect((fixture.server.service.sessions as? BrowserSessions)?.count == 1 && browser.cookies["tessera-session"] != nil)
        }
    }

    @Test(
        "RP-Initiated Logout §2: without a hint the user confirms with a CSRF-protected button; a forged post signs no one out; cancel keeps the session"
    )
    func logoutConfirmation() async throws {
        try await AuthorizeFixture.play(extra: OIDCClients.all) { fixture, client, browser in
            _ = try await Self.tokens(fixture, client, browser, scope: "openid")
            let ask = try await browser.open(
                "/logout?" + formEncode([("client_id", "rp"), ("post_logout_redirect_uri", "https://rp.example/bye"), ("state", "s")]))
            #expect(ask.status == .ok && ask.body.contains("<h1>Sign out?</h1>") && ask.body.contains("<strong>alice</strong>"))
            #expect(ask.headers[HTTPField.Name("Content-Security-Policy")!]?.contains("form-action 'self' https://rp.example") == true)
            let form = try #require(ask.forms.first)
            let forged = try await browser.submit(form, button: "yes", ["csrf_token": "forged"])
            #expect(forged.status == .badRequest && browser.cookies["tessera-session"] != nil)
            let kept = try await browser.submit(form, button: "no")
            #expect(kept.body.contains("You are still signed in") && (fixture.server.service.sessions as? BrowserSessions)?.count == 1)
            let out = try await browser.submit(form, button: "yes")
            #expect(out.status == .seeOther && out.location == "https://rp.example/bye?state=s" && browser.cookies["tessera-session"] == nil)
            // Nobody signed in: nothing to confirm.
            #expect(try await browser.open("/logout").body.contains("<h1>You are signed out</h1>"))
        }
    }

    @Test("Discovery §3, §4: /.well-known/openid-configuration is the RFC 8414 document, with the OpenID Connect members")
    func discovery() async throws {
        try await AuthorizeFixture.play(extra: OIDCClients.all) { _, client, _ in
            let openid = try await get(client, "/.well-known/openid-configuration")
            let oauth = try await get(client, "/.well-known/oauth-authorization-server")
            #expect(openid.status == .ok && openid.body == oauth.body)
            let json = openid.json
            let origin = PlayedBrowser.origin
            #expect(json["userinfo_endpoint"]?.stringValue == origin + "/userinfo" && json["end_session_endpoint"]?.stringValue == origin + "/logout")
            #expect(json["subject_types_supported"] == .array([.string("public")]) && json["response_types_supported"] == .array([.string("code")]))
            #expect(json["id_token_signing_alg_values_supported"] == .array([.string("RS256"), .string("ES256")]))
            #expect(json["scopes_supported"]?.arrayValue?.contains(.string("openid")) == true)
            #expect(json["claims_parameter_supported"] == .bool(true) && json["request_parameter_supported"] == .bool(false))
            let claims = json["claims_supported"]?.arrayValue?.compactMap(\.stringValue) ?? []
            #expect(Set(["sub", "iss", "auth_time", "email", "email_verified", "address", "nonce"]).isSubset(of: Set(claims)))
        }
    }
}
