import Foundation
import HTTPTypes
import HummingbirdTesting
import TesseraIssuer
import TesseraJOSE
import TesseraTestSupport
import Testing

@testable import TesseraServer

/// What an attack pass and a fault-injection pass found (issue 18), each item checked over HTTP.
@Suite("Hardening (issue 18)")
struct HardeningTests {
    @Test(
        "Item 2: revoking the only active key stops signing and publishing it before keys revoke has returned; tokens get 503 temporarily_unavailable until a key is active"
    )
    func revokingTheOnlyKey() async throws {
        let fixture = try ServerFixture()
        defer { fixture.close() }
        let keysPath = fixture.folder.appending("keys")
        let kid = try #require(fixture.service.keys.current.signer()?.keyID)
        // The RS256 key of ID tokens would sign access tokens in the ES256 key's place: revoke it first.
        let idTokenKid = try #require(fixture.service.keys.current.signer(.rs256)?.keyID)
        #expect(try await runTessera(["keys", "revoke", idTokenKid, "--keys", keysPath]).status == 0)
        try await fixture.run { client in
            let form = "grant_type=client_credentials"
            #expect(try await post(client, "/token", form, authorization: fixture.basicAuth).status == .ok)
            let revoke = try await runTessera(["keys", "revoke", kid, "--keys", keysPath])
            #expect(revoke.status == 0, "\(revoke)")
            // No SIGHUP, no poll: the next request already sees the revocation.
            let refused = try await post(client, "/token", form, authorization: fixture.basicAuth)
            #expect(refused.status == .serviceUnavailable && refused.error == "temporarily_unavailable")
            let jwks = try await get(client, "/.well-known/jwks.json")
            #expect(jwks.status == .ok && !jwks.body.contains(kid))
            #expect(try await post(client, "/introspect", "token=x", authorization: fixture.basicAuth).status == .ok)

            let generate = try await runTessera(["keys", "generate", "--alg", "ES256", "--activate", "--keys", keysPath])
            #expect(generate.status == 0, "\(generate)")
            let issued = try await post(client, "/token", form, authorization: fixture.basicAuth)
            #expect(issued.status == .ok)
            let header = try UnverifiedJWS(parsing: try #require(issued.string("access_token"))).header
            #expect(header.keyID != nil && header.keyID != kid)
        }
    }
}

extension HardeningTests {
    @Test("Item 8: wrong passwords of the password grant count against the user, not against the client that relays them")
    func wrongPasswordsDoNotLockTheClient() async throws {
        let fixture = try ServerFixture()
        defer { fixture.close() }
        let data = fixture.service.configuration.dataPath
        try UserStore(dataPath: data).add("alice", password: "correct horse battery", now: Date())
        let legacy = try fixture.addPasswordClient([.password, .clientCredentials])
        try await fixture.run { client async throws in
            for _ in 0..<6 {
                #expect(
                    try await post(client, "/token", "grant_type=password&username=alice&password=wrong", authorization: legacy).status == .badRequest
                )
            }
            #expect(
                try await post(client, "/token", "grant_type=password&username=alice&password=wrong", authorization: legacy).status
                    == .tooManyRequests)
            // The client is not held back for its user's mistakes, nor is another user.
            #expect(try await post(client, "/token", "grant_type=client_credentials", authorization: legacy).status == .ok)
            #expect(try await post(client, "/token", "grant_type=password&username=bob&password=x", authorization: legacy).error == "invalid_grant")
        }
    }
}

extension HardeningTests {
    @Test("Item 20: while the refresh-token store refuses work, /introspect answers 503 temporarily_unavailable, not active: false")
    func introspectionWhileTheStoreRefuses() async throws {
        let fixture = try ServerFixture()
        defer { fixture.close() }
        try await fixture.run { client async throws in
            // A live refresh token of a user, issued directly into the server's store.
            let alice = try fixture.addUser()
            let family = try await fixture.service.refreshTokens.issue(
                NewRefreshTokenFamily(clientID: "svc", subject: alice.subject, scope: ["read"], authTime: Date()))
            let live = try await post(client, "/introspect", "token=\(family.token.rawValue)", authorization: fixture.basicAuth)
            #expect(live.status == .ok && live.json["active"] == .bool(true))
            // The refuse-everything state after a failed write answers like a closed store: code `unavailable`.
            (fixture.service.refreshTokens as? FileRefreshTokenStore)?.close()
            let refused = try await post(client, "/introspect", "token=\(family.token.rawValue)", authorization: fixture.basicAuth)
            #expect(refused.status == .serviceUnavailable && refused.error == "temporarily_unavailable", "\(refused.body)")
        }
    }
}

extension HardeningTests {
    @Test(
        "Item 7: a flood of password sign-ins beside client_credentials: the token requests are all answered while the flood is still being checked; beyond the queue, 503"
    )
    func signInFloodBesideTokens() async throws {
        let checker = PasswordChecker(threads: 1, queueLimit: 6)
        let fixture = try ServerFixture(passwordChecker: checker)
        defer { fixture.close() }
        let legacy = try fixture.addPasswordClient([.password])
        // The checker's one thread is held until every token request has its answer, so "while the flood is
        // still being checked" does not depend on how fast this machine runs scrypt.
        let gate = DispatchSemaphore(value: 0)
        let holding = OrderLog()
        let held = Task {
            try await checker.run {
                holding.record("held")
                gate.wait()
            }
        }
        defer { gate.signal() }
        while holding.events.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
        try await fixture.run { client async throws in
            let order = OrderLog()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<24 {
                    group.addTask {
                        let reply = try await post(
                            client, "/token", "grant_type=password&username=guess\(index)&password=wrong", authorization: legacy)
                        order.record("password \(reply.status.code) \(reply.error ?? "")")
                    }
                }
                try await Task.sleep(for: .milliseconds(100))
                try await withThrowingTaskGroup(of: Void.self) { tokens in
                    for _ in 0..<10 {
                        tokens.addTask {
                            let reply = try await post(client, "/token", "grant_type=client_credentials", authorization: fixture.basicAuth)
                            order.record("token \(reply.status.code)")
                        }
                    }
                    try await tokens.waitForAll()
                }
                #expect(!order.events.contains("password 400 invalid_grant"), "no password check ran yet: \(order.events)")
                gate.signal()
                try await group.waitForAll()
            }
            let events = order.events
            let checked = events.filter { $0 == "password 400 invalid_grant" }.count
            let refused = events.filter { $0 == "password 503 temporarily_unavailable" }.count
            // The held job is running, so at least 7 checks (the queue and a thread's share) wait; most others are refused.
            #expect(checked + refused == 24 && checked >= 7, "\(events)")
            #expect(events.filter { $0 == "token 200" }.count == 10)
            // Every token request was answered before the last password check finished.
            let lastToken = try #require(events.lastIndex { $0.hasPrefix("token") })
            let lastChecked = try #require(events.lastIndex { $0 == "password 400 invalid_grant" })
            #expect(lastToken < lastChecked, "\(events)")
        }
        try await held.value
    }
}

final class OrderLog: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    var events: [String] { lock.withLock { stored } }
    func record(_ event: String) { lock.withLock { stored.append(event) } }
}
