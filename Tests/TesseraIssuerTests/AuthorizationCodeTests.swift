import Foundation
import TesseraJOSE
import TesseraTestSupport
import Testing

@testable import TesseraIssuer

@Suite("Authorization code exchange and PKCE (no /authorize yet)")
struct AuthorizationCodeTests {
    @Test("RFC 7636 App. B: the S256 vector verifies; every derived negative case is refused")
    func pkceVector() throws {
        let vector = try Vectors.json("rfc/rfc7636_b_pkce_s256.json")
        let verifier = vector["code_verifier"] as! String
        let challenge = vector["code_challenge"] as! String
        #expect(Base64URL.encode((vector["random_octets"] as! [Int]).map(UInt8.init)) == verifier)
        #expect(Digest.sha256(Array(verifier.utf8)) == (vector["sha256_of_verifier_octets"] as! [Int]).map(UInt8.init))
        #expect(PKCE.verify(verifier: verifier, challenge: challenge, method: .s256))
        #expect(PKCE.isValidChallenge(challenge, method: .s256))
        for case let negative as [String: String] in vector["negative_cases"] as! [Any] {
            let method = negative["code_challenge_method"] == "plain" ? PKCE.Method.plain : .s256
            // The server requires S256: a plain challenge is refused where it is received.
            let accepted =
                method == .s256 && PKCE.isValidChallenge(negative["code_challenge"]!, method: .s256)
                && PKCE.verify(verifier: negative["code_verifier"]!, challenge: negative["code_challenge"]!, method: .s256)
            #expect(!accepted, "\(negative["why"]!)")
        }
    }

    struct Fixture {
        let clock = SteppedClock(Date(timeIntervalSince1970: TimeInterval(Int(Date().timeIntervalSince1970))))
        let codes: AuthorizationCodeStore
        let store: InMemoryRefreshTokenStore
        let grant: AuthorizationCodeGrant
        let client = Client(
            id: "app", type: .public, secretDigest: nil, grants: [.authorizationCode, .refreshToken], scopes: ["read"],
            defaultScopes: ["read"], audience: "api", redirectURIs: ["https://app.example/cb"], created: Date())
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

        init() {
            codes = AuthorizationCodeStore(clock: clock.wallClock)
            store = InMemoryRefreshTokenStore(clock: clock.wallClock)
            grant = AuthorizationCodeGrant(codes: codes, store: store)
        }

        func code(challenge: Bool = true, redirect: String? = "https://app.example/cb", client: String = "app") throws -> String {
            try codes.issue(
                AuthorizationCodeGrantRecord(
                    clientID: client, redirectURI: redirect, challenge: challenge ? (self.challenge, .s256) : nil,
                    scope: ["read"], subject: "alice", authTime: clock.now))
        }

        func exchange(_ code: String, _ extra: [String: String] = [:], client: Client? = nil) async throws -> Grant {
            var parameters = ["grant_type": "authorization_code", "code": code, "redirect_uri": "https://app.example/cb", "code_verifier": verifier]
            for (name, value) in extra { parameters[name] = value.isEmpty ? nil : value }
            return try await grant.grant(TokenRequest(parameters: parameters), client: client ?? self.client)
        }
    }

    func expectInvalidGrant(_ log: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async {
        guard let error = await expectError(OAuthError.Code.invalidGrant, sourceLocation: sourceLocation, body) else { return }
        #expect(error.logMessage.contains(log), "\(error.logMessage)", sourceLocation: sourceLocation)
    }

    @Test("RFC 6749 §4.1.3: a code exchanges once for a refresh family bound to the user; a replay fails and revokes that family")
    func singleUseAndReplay() async throws {
        let fixture = Fixture()
        let code = try fixture.code()
        let grant = try await fixture.exchange(code)
        #expect(grant.subject == "alice" && grant.scope == ["read"] && grant.refreshToken != nil)
        let familyID = try #require(grant.familyID)
        #expect(try await fixture.store.isFamilyLive(familyID))
        await expectInvalidGrant("replayed") { _ = try await fixture.exchange(code) }
        #expect(try await fixture.store.isFamilyLive(familyID) == false)
        #expect(try await fixture.store.record(for: grant.refreshToken!) == nil)
    }

    /// The rule (docs/authorization-code.md, "A code used twice"): a second use of a code revokes everything
    /// the code produced, whenever it arrives. So of concurrent exchanges at most one succeeds, and none
    /// when a replay lands while the first is still in flight; no token is handed out already revoked.
    @Test("THREATS B4: concurrent exchanges of one code: at most one succeeds, and the replays revoke what it got")
    func concurrentExchange() async throws {
        let fixture = Fixture()
        let code = try fixture.code()
        let grants = await withTaskGroup(of: Grant?.self) { group in
            for _ in 0..<16 { group.addTask { try? await fixture.exchange(code) } }
            return await group.reduce(into: [Grant]()) { if let grant = $1 { $0.append(grant) } }
        }
        #expect(grants.count <= 1)
        for grant in grants {
            // The other fifteen were replays: whichever came after it revoked its family.
            #expect(try await fixture.store.isFamilyLive(try #require(grant.familyID)) == false)
            #expect(try await fixture.store.record(for: try #require(grant.refreshToken)) == nil)
        }
        // One exchange took the code and started a family; a replay revoked it, in flight or after.
        let statistics = await fixture.store.statistics()
        #expect(statistics.families == 0 && statistics.revokedFamilies == 1, "\(statistics)")
    }

    @Test("THREATS B4: a replay while the first exchange is in flight fails, and that exchange fails too, revoking the family it started")
    func replayDuringExchange() async throws {
        let fixture = Fixture()
        let code = try fixture.code()
        // The first exchange has taken the code and is storing its family (the await in the grant)...
        guard case .fresh = fixture.codes.redeem(code, clientID: "app") else {
            Issue.record("first redemption not fresh")
            return
        }
        // ...when the replay arrives: refused, and the code is marked so the first exchange learns it.
        await expectInvalidGrant("replayed") { _ = try await fixture.exchange(code) }
        let issued = try await fixture.store.issue(
            NewRefreshTokenFamily(
                clientID: "app", subject: "alice", scope: ["read"], authTime: fixture.clock.now,
                policy: .standard))
        #expect(fixture.codes.attach(familyID: issued.record.familyID, to: code), "the in-flight exchange must learn of the replay and fail")
        // Without a replay, attaching says nothing is wrong.
        let quiet = try fixture.code()
        guard case .fresh = fixture.codes.redeem(quiet, clientID: "app") else {
            Issue.record("redemption not fresh")
            return
        }
        #expect(fixture.codes.attach(familyID: issued.record.familyID, to: quiet) == false)
    }

    @Test("THREATS B2, B5–B7: redirect_uri, expiry (60 s), another client, missing or wrong verifier, and a verifier without a challenge")
    func bindings() async throws {
        let fixture = Fixture()
        await expectInvalidGrant("redirect_uri") { _ = try await fixture.exchange(try fixture.code(), ["redirect_uri": "https://app.example/cb/"]) }
        await expectInvalidGrant("redirect_uri") { _ = try await fixture.exchange(try fixture.code(), ["redirect_uri": ""]) }
        let expiring = try fixture.code()
        fixture.clock.advance(60)
        await expectInvalidGrant("expired") { _ = try await fixture.exchange(expiring) }
        let other = try fixture.code(client: "other")
        await expectInvalidGrant("another client") { _ = try await fixture.exchange(other) }
        await expectInvalidGrant("missing") { _ = try await fixture.exchange(try fixture.code(), ["code_verifier": ""]) }
        await expectInvalidGrant("does not match") {
            _ = try await fixture.exchange(try fixture.code(), ["code_verifier": String(repeating: "a", count: 43)])
        }
        await expectInvalidGrant("no code_challenge") { _ = try await fixture.exchange(try fixture.code(challenge: false)) }
        // Without a challenge and without a verifier (a confidential client's choice) it works; no redirect_uri was bound.
        let plain = try await fixture.exchange(try fixture.code(challenge: false, redirect: nil), ["code_verifier": "", "redirect_uri": ""])
        #expect(plain.subject == "alice")
        await expectInvalidGrant("unknown") { _ = try await fixture.exchange("tac_" + Base64URL.encode(try SecureRandom.bytes(count: 32))) }
    }
}

@Suite("Authorization requests: parameter validation")
struct AuthorizationRequestTests {
    let registry = ClientRegistry(clients: [
        Client(
            id: "app", type: .public, secretDigest: nil, grants: [.authorizationCode, .refreshToken], scopes: ["read", "write"],
            defaultScopes: ["read"], audience: "api", redirectURIs: ["https://client.example/cb"], created: Date()),
        Client(
            id: "web", type: .confidential, secretDigest: Client.digest(ofSecret: "s"), grants: [.authorizationCode], scopes: ["read"],
            defaultScopes: ["read"], audience: "api", redirectURIs: ["https://web.example/a", "https://web.example/b"], created: Date()),
    ])
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

    func parameters(_ changes: [String: String?] = [:]) -> [String: String] {
        var base: [String: String] = [
            "response_type": "code", "client_id": "app", "redirect_uri": "https://client.example/cb",
            "code_challenge": challenge, "code_challenge_method": "S256", "state": "xyz",
        ]
        for (name, value) in changes { base[name] = value }
        return base
    }

    func errorCode(_ outcome: AuthorizationRequest.Outcome) -> (kind: String, code: String) {
        switch outcome {
        case .valid: return ("valid", "")
        case .errorPage(let error): return ("page", error.code.rawValue)
        case .redirectError(let error, _, _): return ("redirect", error.code.rawValue)
        }
    }

    @Test("THREATS B1, B3: redirect URIs match exactly; a wrong client or URI gets an error page, never a redirect")
    func redirectMatching() {
        for uri in [
            "https://client.example/cb/", "https://client.example/CB", "https://client.example/cb?x=1", "https://client.example/cb#f",
            "https://client.example/cb/../evil", "https://client.example.evil/cb", "https://client.exam%70le/cb", "http://client.example/cb",
            "https://client.example:443/cb", "https://CLIENT.example/cb", "",
        ] {
            #expect(
                errorCode(AuthorizationRequest.validate(parameters(["redirect_uri": uri]), registry: registry)) == ("page", "invalid_request"),
                "\(uri)")
        }
        #expect(errorCode(AuthorizationRequest.validate(parameters(["client_id": "nobody"]), registry: registry)).kind == "page")
        #expect(errorCode(AuthorizationRequest.validate(parameters(["client_id": nil]), registry: registry)).kind == "page")
        // One registered URI may be omitted; with two it may not.
        guard case .valid(let request) = AuthorizationRequest.validate(parameters(["redirect_uri": nil]), registry: registry) else {
            Issue.record("not valid")
            return
        }
        #expect(request.redirectURI == "https://client.example/cb" && !request.redirectURISent && request.scope == ["read"])
        #expect(errorCode(AuthorizationRequest.validate(["response_type": "code", "client_id": "web"], registry: registry)).kind == "page")
    }

    @Test("THREATS B6, B8, B18: PKCE required for public clients, S256 only; implicit and hybrid types refused; errors redirect with state")
    func errorsThatRedirect() {
        let cases: [([String: String?], String)] = [
            (["code_challenge": nil, "code_challenge_method": nil], "invalid_request"),
            (["code_challenge_method": "plain", "code_challenge": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"], "invalid_request"),
            (["code_challenge_method": nil], "invalid_request"),
            (["code_challenge_method": "s256"], "invalid_request"),
            (["code_challenge": challenge + "="], "invalid_request"),
            (["code_challenge": "short"], "invalid_request"),
            (["code_challenge": nil], "invalid_request"),
            (["response_type": "token"], "unsupported_response_type"),
            (["response_type": "code token"], "unsupported_response_type"),
            (["response_type": "code id_token"], "unsupported_response_type"),
            (["response_type": nil], "invalid_request"),
            (["scope": "admin"], "invalid_scope"),
            (["scope": "read  write"], "invalid_scope"),
            (["prompt": "none login"], "invalid_request"),
            (["state": String(repeating: "s", count: 2_049)], "invalid_request"),
        ]
        for (changes, code) in cases {
            let outcome = AuthorizationRequest.validate(parameters(changes), registry: registry)
            #expect(errorCode(outcome) == ("redirect", code), "\(changes)")
            if case .redirectError(_, let uri, let state) = outcome {
                #expect(uri == "https://client.example/cb")
                if changes["state"] == nil { #expect(state == "xyz") }
            }
        }
        guard
            case .valid(let request) = AuthorizationRequest.validate(
                parameters(["scope": "write read", "prompt": "login consent"]), registry: registry)
        else {
            Issue.record("not valid")
            return
        }
        #expect(request.scope == ["write", "read"] && request.challenge?.method == .s256 && request.prompt == ["login", "consent"])
    }

    @Test("THREATS B9, B10: the redirect echoes state byte for byte (URL-special characters too) and carries iss (RFC 9207)")
    func redirectParameters() throws {
        let state = "a b&c=d/é?#%+"
        let location = AuthorizationRequest.redirect(
            to: "https://client.example/cb?keep=1", [("code", "tac_x")], state: state, issuer: "https://auth.example")
        let items = try #require(URLComponents(string: location)?.queryItems)
        #expect(items.map(\.name) == ["keep", "code", "state", "iss"])
        #expect(items.first { $0.name == "state" }?.value == state && items.first { $0.name == "iss" }?.value == "https://auth.example")
    }
}

@Suite("Authorization codes: bounded (issue 18, item 10)")
struct AuthorizationCodeBoundTests {
    static func record(_ subject: String, client: String = "app") -> AuthorizationCodeGrantRecord {
        AuthorizationCodeGrantRecord(clientID: client, redirectURI: nil, challenge: nil, scope: ["read"], subject: subject, authTime: Date())
    }

    @Test("One user minting codes holds at most 10 unused ones per client (the newest); others are untouched; expired codes go without a scan")
    func perGrantBound() throws {
        let clock = SteppedClock()
        let codes = AuthorizationCodeStore(clock: clock.wallClock)
        let bobs = try (0..<3).map { _ in try codes.issue(Self.record("bob")) }
        var alices: [String] = []
        for _ in 0..<1_000 { alices.append(try codes.issue(Self.record("alice"))) }
        #expect(codes.count == 10 + 3)
        // The oldest of alice's are gone; her newest ten and all of bob's still work.
        if case .fresh = codes.redeem(alices[0], clientID: "app") { Issue.record("an evicted code was redeemed") }
        for code in alices.suffix(10) + bobs {
            guard case .fresh = codes.redeem(code, clientID: "app") else {
                Issue.record("a code within the bound did not redeem")
                continue
            }
        }
        // Used codes are kept for replay detection, but no longer count as open: alice may mint ten more.
        let more = try (0..<10).map { _ in try codes.issue(Self.record("alice")) }
        if case .replayed = codes.redeem(alices.last!, clientID: "app") {} else { Issue.record("a replay was not recognised") }
        // Another client of the same user has its own bound.
        _ = try codes.issue(Self.record("alice", client: "other"))
        #expect(codes.count == 13 + 10 + 1)
        clock.advance(AuthorizationCodeStore.lifetime + 1)
        _ = try codes.issue(Self.record("carol"))
        #expect(codes.count == 1)
        if case .fresh = codes.redeem(more[0], clientID: "app") { Issue.record("an expired code was redeemed") }
    }
}
