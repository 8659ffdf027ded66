import Foundation
import Testing
import TesseraJOSE
@testable import TesseraIssuer
import TesseraTestSupport

@Suite("Authorization code exchange and PKCE (no /authorize yet)")
struct AuthorizationCodeTests {
    @Test("RFC 7636 App. B: the S256 vector verifies; every derived negative case is refused")
    func pkceVector() throws {
        let vector = try Vectors.json("rfc/rfc7636_b_pkce_s256.json")
        let verifier = vector["code_verifier"] as! String, challenge = vector["code_challenge"] as! String
        #expect(Base64URL.encode((vector["random_octets"] as! [Int]).map(UInt8.init)) == verifier)
        #expect(Digest.sha256(Array(verifier.utf8)) == (vector["sha256_of_verifier_octets"] as! [Int]).map(UInt8.init))
        #expect(PKCE.verify(verifier: verifier, challenge: challenge, method: .s256))
        #expect(PKCE.isValidChallenge(challenge, method: .s256))
        for case let negative as [String: String] in vector["negative_cases"] as! [Any] {
            let method = negative["code_challenge_method"] == "plain" ? PKCE.Method.plain : .s256
            // The server requires S256: a plain challenge is refused where it is received.
            let accepted = method == .s256 && PKCE.isValidChallenge(negative["code_challenge"]!, method: .s256)
                && PKCE.verify(verifier: negative["code_verifier"]!, challenge: negative["code_challenge"]!, method: .s256)
            #expect(!accepted, "\(negative["why"]!)")
        }
    }

    struct Fixture {
        let clock = SteppedClock(Date(timeIntervalSince1970: TimeInterval(Int(Date().timeIntervalSince1970))))
        let codes: AuthorizationCodeStore
        let store: InMemoryRefreshTokenStore
        let grant: AuthorizationCodeGrant
        let client = Client(id: "app", type: .public, secretDigest: nil, grants: [.authorizationCode, .refreshToken], scopes: ["read"],
                            defaultScopes: ["read"], audience: "api", redirectURIs: ["https://app.example/cb"], created: Date())
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

        init() {
            codes = AuthorizationCodeStore(clock: clock.wallClock)
            store = InMemoryRefreshTokenStore(clock: clock.wallClock)
            grant = AuthorizationCodeGrant(codes: codes, store: store)
        }

        func code(challenge: Bool = true, redirect: String? = "https://app.example/cb", client: String = "app") throws -> String {
            try codes.issue(AuthorizationCodeGrantRecord(clientID: client, redirectURI: redirect, challenge: challenge ? (self.challenge, .s256) : nil,
                                                         scope: ["read"], subject: "alice", authTime: clock.now))
        }

        func exchange(_ code: String, _ extra: [String: String] = [:], client: Client? = nil) async throws -> Grant {
            var parameters = ["grant_type": "authorization_code", "code": code, "redirect_uri": "https://app.example/cb", "code_verifier": verifier]
            for (name, value) in extra { parameters[name] = value.isEmpty ? nil : value }
            return try await grant.grant(TokenRequest(parameters: parameters), client: client ?? self.client)
        }
    }

    func expectInvalidGrant(_ log: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async {
        do {
            try await body()
            Issue.record("expected invalid_grant", sourceLocation: sourceLocation)
        } catch let error as OAuthError {
            #expect(error.code == .invalidGrant && error.logMessage.contains(log), "\(error.logMessage)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("\(error)", sourceLocation: sourceLocation)
        }
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

    @Test("THREATS B4: two concurrent exchanges of one code: exactly one succeeds")
    func concurrentExchange() async throws {
        let fixture = Fixture()
        let code = try fixture.code()
        let results = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<16 { group.addTask { (try? await fixture.exchange(code)) != nil } }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.filter { $0 }.count == 1)
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
        await expectInvalidGrant("does not match") { _ = try await fixture.exchange(try fixture.code(), ["code_verifier": String(repeating: "a", count: 43)]) }
        await expectInvalidGrant("no code_challenge") { _ = try await fixture.exchange(try fixture.code(challenge: false)) }
        // Without a challenge and without a verifier (a confidential client's choice) it works; no redirect_uri was bound.
        let plain = try await fixture.exchange(try fixture.code(challenge: false, redirect: nil), ["code_verifier": "", "redirect_uri": ""])
        #expect(plain.subject == "alice")
        await expectInvalidGrant("unknown") { _ = try await fixture.exchange("tac_" + Base64URL.encode(try SecureRandom.bytes(count: 32))) }
    }
}
