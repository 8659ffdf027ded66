import Foundation
import TesseraJOSE
import Testing

@testable import TesseraVerifier

@Suite("Remote JWKS: cache, rotation, cooldown, outages (real HTTP on loopback)")
struct RemoteJWKSTests {
    static func verifier(_ source: any KeySource, _ factory: TokenFactory) throws -> AccessTokenVerifier {
        var configuration = factory.configuration(leeway: 0)
        configuration.clock = .fixed(Date(timeIntervalSince1970: TimeInterval(factory.now)))
        return try AccessTokenVerifier(configuration: configuration, keySource: source)
    }

    /// What a cache test needs: the endpoint running, a manual clock, a source reading it, and a verifier.
    struct Fixture {
        let endpoint: JWKSEndpoint
        let clock: ManualClock
        let source: RemoteJWKSKeySource
        let factory: TokenFactory
        let verifier: AccessTokenVerifier
    }

    static func withFixture(
        _ key: SigningKey, configure: (JWKSEndpoint) -> Void = { _ in }, logger: KeySourceLogger? = nil,
        _ body: @escaping @Sendable (Fixture) async throws -> Void
    ) async throws {
        let endpoint = JWKSEndpoint(keys: [key])
        configure(endpoint)
        try await endpoint.run { base in
            let clock = ManualClock()
            let source = RemoteJWKSKeySource(
                jwksURL: base.appendingPathComponent("jwks.json"), policy: .patient,
                http: URLSessionHTTPGetter.shared, clock: clock.monotonic, logger: logger)
            let factory = TokenFactory(key: key)
            try await body(
                Fixture(
                    endpoint: endpoint, clock: clock, source: source, factory: factory,
                    verifier: try Self.verifier(source, factory)))
        }
    }

    @Test("first request loads the keys; later ones are served from the cache without a request")
    func caches() async throws {
        let key = try SigningKey.generate(.es256)
        try await Self.withFixture(key) { fixture in
            let (endpoint, factory, verifier) = (fixture.endpoint, fixture.factory, fixture.verifier)
            for _ in 0..<50 { _ = try await verifier.verify(try factory.token()) }
            #expect(endpoint.requests == 1)
        }
    }

    @Test("concurrent first requests share one fetch (single flight)")
    func singleFlight() async throws {
        let key = try SigningKey.generate(.es256)
        let endpoint = JWKSEndpoint(keys: [key])
        endpoint.mode = .slow(.milliseconds(200))
        try await endpoint.run { base in
            let source = RemoteJWKSKeySource(jwksURL: base.appendingPathComponent("jwks.json"), policy: .patient)
            let factory = TokenFactory(key: key)
            let verifier = try Self.verifier(source, factory)
            let token = try factory.token()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<64 { group.addTask { _ = try await verifier.verify(token) } }
                try await group.waitForAll()
            }
            #expect(endpoint.requests == 1)
        }
    }

    @Test("C13/B24: a rotated-in key with a new kid is picked up by one refresh; old tokens keep verifying")
    func rotation() async throws {
        let old = try SigningKey.generate(.es256)
        let new = try SigningKey.generate(.es256)
        let endpoint = JWKSEndpoint(keys: [old])
        try await endpoint.run { base in
            let clock = ManualClock()
            let source = RemoteJWKSKeySource(
                jwksURL: base.appendingPathComponent("jwks.json"), policy: .patient,
                http: URLSessionHTTPGetter.shared, clock: clock.monotonic)
            let oldFactory = TokenFactory(key: old)
            let newFactory = TokenFactory(key: new)
            let verifier = try Self.verifier(source, oldFactory)
            _ = try await verifier.verify(try oldFactory.token())
            endpoint.keys = [new, old]
            endpoint.etag = "\"v2\""
            _ = try await verifier.verify(try newFactory.token())  // unknown kid → one refresh
            _ = try await verifier.verify(try oldFactory.token())
            #expect(endpoint.requests == 2)
        }
    }

    @Test("a burst of 10,000 tokens with random unknown kids causes one JWKS fetch per cooldown, and fails fast")
    func unknownKidBurst() async throws {
        let key = try SigningKey.generate(.es256)
        let attacker = try SigningKey.generate(.es256)
        try await Self.withFixture(key) { fixture in
            let (endpoint, clock, factory, verifier) = (fixture.endpoint, fixture.clock, fixture.factory, fixture.verifier)
            _ = try await verifier.verify(try factory.token())
            #expect(endpoint.requests == 1)
            let forged = try (0..<200).map { index in
                try TokenFactory(key: attacker).token(header: #"{"alg":"ES256","typ":"at+jwt","kid":"forged-\#(index)"}"#, signer: attacker)
            }
            var failures = 0
            for round in 0..<10_000 {
                if await outcome(verifier, forged[round % forged.count]) == .unknownKey { failures += 1 }
            }
            #expect(failures == 10_000)
            #expect(endpoint.requests == 2, "one refresh for the whole burst inside one cooldown")
            // Genuine tokens were never disturbed.
            _ = try await verifier.verify(try factory.token())
            // After the cooldown, one more refresh is allowed.
            clock.advance(31)
            #expect(await outcome(verifier, forged[0]) == .unknownKey)
            #expect(endpoint.requests == 3)
        }
    }

    @Test("lifetime from Cache-Control; refresh ahead of expiry in the background, revalidated with If-None-Match")
    func refreshAheadWithETag() async throws {
        let key = try SigningKey.generate(.es256)
        let configure: (JWKSEndpoint) -> Void = { endpoint in endpoint.cacheControl = "public, max-age=120" }
        try await Self.withFixture(key, configure: configure) { fixture in
            let (endpoint, clock, factory, verifier) = (fixture.endpoint, fixture.clock, fixture.factory, fixture.verifier)
            _ = try await verifier.verify(try factory.token())
            clock.advance(80)  // < 75 % of 120 s: no refresh
            _ = try await verifier.verify(try factory.token())
            #expect(endpoint.requests == 1)
            clock.advance(15)  // 95 s ≥ 90 s: a background refresh starts; this request does not wait for it
            _ = try await verifier.verify(try factory.token())
            try await waitUntil { endpoint.requests == 2 }
            #expect(endpoint.conditionalRequests == 1)
            _ = try await verifier.verify(try factory.token())
        }
    }

    @Test("stale-if-error: while the issuer fails, cached keys keep working up to the bound, then keysUnavailable")
    func staleIfError() async throws {
        let key = try SigningKey.generate(.es256)
        let events = EventLog()
        try await Self.withFixture(key, logger: events.record) { fixture in
            let (endpoint, clock, source, factory, verifier) = (fixture.endpoint, fixture.clock, fixture.source, fixture.factory, fixture.verifier)
            _ = try await verifier.verify(try factory.token())
            endpoint.mode = .fail500
            for _ in 0..<20 {
                clock.advance(600)  // well past the 300 s lifetime
                _ = try await verifier.verify(try factory.token())
                try await waitUntil { source.isIdle }
            }
            #expect(events.errors == 1, "the outage is logged once")
            clock.advance(86_400)
            #expect(await outcome(verifier, try factory.token()) == .keysUnavailable)
            endpoint.mode = .serve
            try await waitUntil { source.isIdle }
            clock.advance(10)
            _ = try? await verifier.verify(try factory.token())
            try await waitUntil { source.isIdle }
            _ = try await verifier.verify(try factory.token())
            #expect(events.infos.contains { $0.contains("works again") })
        }
    }

    @Test(
        "An issuer that accepts and never answers, or drips its body, fails the fetch at the deadline: the first load is keys_unavailable, logged once",
        arguments: [StallingServer.Mode.silent, .drip])
    func stallingIssuer(_ mode: StallingServer.Mode) async throws {
        let server = try StallingServer(mode)
        defer { server.stop() }
        let direct = await returns(within: 30) {
            try await URLSessionHTTPGetter.shared.get(server.url, headers: [:], timeout: 0.5, maximumSize: 256 * 1024)
        }
        // Our deadline, or (for the drip, sometimes) libcurl giving up on the transfer at about the same moment.
        #expect(direct?.failure is HTTPGetError, "\(String(describing: direct))")
        var policy = RemoteJWKSKeySource.Policy()
        policy.timeout = 0.5
        let events = EventLog()
        let key = try SigningKey.generate(.es256)
        let factory = TokenFactory(key: key)
        let source = RemoteJWKSKeySource(
            jwksURL: server.url, policy: policy, http: URLSessionHTTPGetter.shared,
            clock: ManualClock().monotonic, logger: events.record)
        let verifier = try Self.verifier(source, factory)
        let token = try factory.token()
        let verified = await returns(within: 30) { try await verifier.verify(token) }
        #expect((verified?.failure as? TokenVerificationError)?.code == .keysUnavailable)
        #expect(events.errors == 1)
        #expect(events.messages.contains { $0.hasPrefix("JWKS refresh failed") }, "\(events.messages)")
    }

    @Test("a garbage, too large or empty JWKS never evicts good keys", arguments: ["garbage", "huge", "empty"])
    func badResponsesDoNotEvict(_ kind: String) async throws {
        let key = try SigningKey.generate(.es256)
        try await Self.withFixture(key) { fixture in
            let (endpoint, clock, source, factory, verifier) = (fixture.endpoint, fixture.clock, fixture.source, fixture.factory, fixture.verifier)
            _ = try await verifier.verify(try factory.token())
            switch kind {
            case "garbage": endpoint.mode = .garbage
            case "huge": endpoint.mode = .huge
            default: endpoint.keys = []
            }
            endpoint.etag = nil
            clock.advance(400)
            _ = try await verifier.verify(try factory.token())
            try await waitUntil { endpoint.requests == 2 && source.isIdle }
            _ = try await verifier.verify(try factory.token())
        }
    }

    @Test("RFC 8414 discovery: metadata gives jwks_uri; a metadata issuer that differs is refused")
    func discovery() async throws {
        let key = try SigningKey.generate(.eddsa)
        let endpoint = JWKSEndpoint(keys: [key])
        try await endpoint.run { base in
            var factory = TokenFactory(key: key)
            factory.issuer = base.absoluteString
            let source = try RemoteJWKSKeySource(issuer: base.absoluteString, policy: .patient)
            let verifier = try Self.verifier(source, factory)
            _ = try await verifier.verify(try factory.token())
            let wrong = try RemoteJWKSKeySource(issuer: base.absoluteString + "/other", policy: .patient)
            #expect(await outcome(try Self.verifier(wrong, factory), try factory.token()) == .keysUnavailable)
        }
    }

    @Test("RFC 8414 §3.1 metadata URL construction")
    func metadataURL() {
        #expect(
            RemoteJWKSKeySource.metadataURL(forIssuer: "https://as.example")?.absoluteString
                == "https://as.example/.well-known/oauth-authorization-server")
        #expect(
            RemoteJWKSKeySource.metadataURL(forIssuer: "https://as.example/tenant/1/")?.absoluteString
                == "https://as.example/.well-known/oauth-authorization-server/tenant/1")
        #expect(RemoteJWKSKeySource.metadataURL(forIssuer: "ftp://as.example") == nil)
        #expect(RemoteJWKSKeySource.metadataURL(forIssuer: "https://as.example?x=1") == nil)
        #expect(RemoteJWKSKeySource.isAcceptableKeyURL(URL(string: "http://127.0.0.1:8080/jwks")!))
        #expect(!RemoteJWKSKeySource.isAcceptableKeyURL(URL(string: "http://as.example/jwks")!))
        // Plain http only on loopback: a DNS name that begins with "127." is anywhere on the network.
        for url in ["http://localhost/j", "http://LOCALHOST:1/j", "http://[::1]:8/j", "http://127.255.0.9/j", "https://127.attacker.example/j"] {
            #expect(RemoteJWKSKeySource.isAcceptableKeyURL(URL(string: url)!), "\(url)")
        }
        for url in [
            "http://127.attacker.example/j", "http://127.0.0.1.nip.io/j", "http://127.0.0/j", "http://127.0.0.256/j", "http://128.0.0.1/j",
            "http://localhost.example/j", "ftp://127.0.0.1/j",
        ] {
            #expect(!RemoteJWKSKeySource.isAcceptableKeyURL(URL(string: url)!), "\(url)")
        }
    }

    @Test("Cache-Control lifetimes are honoured down to the 10 s floor the key ring enforces, and up to 24 h")
    func lifetimes() {
        let source = RemoteJWKSKeySource(jwksURL: URL(string: "https://as.example/jwks")!)
        #expect(source.lifetime(from: nil) == 300)
        #expect(source.lifetime(from: "max-age=5") == 10)
        #expect(source.lifetime(from: "max-age=10") == 10 && source.lifetime(from: "max-age=12") == 12)
        #expect(source.lifetime(from: "public, max-age=3600") == 3600)
        #expect(source.lifetime(from: "max-age=999999999") == 86_400)
        #expect(source.lifetime(from: "no-store") == 10)
        #expect(source.lifetime(from: "max-age=abc") == 300)
        #expect(Int(source.policy.minimumLifetime) == JWKSCaching.minimumMaxAge)
    }

    @Test(
        "Issue 18 item 3: with the shortest max-age the key ring allows (10 s, publish delay 12 s), a key activated after the delay verifies at once, even with the unknown-kid cooldown spent"
    )
    func shortMaxAgeRotation() async throws {
        let old = try SigningKey.generate(.es256)
        let new = try SigningKey.generate(.es256)
        let configure: (JWKSEndpoint) -> Void = { endpoint in endpoint.cacheControl = "public, max-age=10" }
        try await Self.withFixture(old, configure: configure) { fixture in
            let (endpoint, clock, verifier) = (fixture.endpoint, fixture.clock, fixture.verifier)
            _ = try await verifier.verify(try fixture.factory.token())
            // A forged kid spends the cooldown (30 s) at once.
            let forged = try fixture.factory.token(header: #"{"alg":"ES256","typ":"at+jwt","kid":"forged"}"#)
            #expect(await outcome(verifier, forged) == .unknownKey)
            // The issuer publishes the new key; the verifier refreshes in the background within the max-age.
            clock.advance(1)
            endpoint.keys = [old, new]
            endpoint.etag = "\"v2\""
            for _ in 0..<11 {
                clock.advance(1)
                _ = try await verifier.verify(try fixture.factory.token())
                try await waitUntil { fixture.source.isIdle }
            }
            // 12 s after publication the issuer signs with the new key: its tokens verify.
            var newFactory = TokenFactory(key: new)
            newFactory.now = fixture.factory.now
            _ = try await verifier.verify(try newFactory.token())
            #expect(endpoint.requests >= 3)
        }
    }

    @Test("Issue 18 item 3: tokens of an unknown kid that arrive while its refetch is under way join it instead of failing at once")
    func unknownKidJoinsTheFetch() async throws {
        let old = try SigningKey.generate(.es256)
        let new = try SigningKey.generate(.es256)
        try await Self.withFixture(old) { fixture in
            let (endpoint, verifier) = (fixture.endpoint, fixture.verifier)
            _ = try await verifier.verify(try fixture.factory.token())
            endpoint.keys = [old, new]
            endpoint.etag = "\"v2\""
            endpoint.mode = .slow(.milliseconds(300))
            var newFactory = TokenFactory(key: new)
            newFactory.now = fixture.factory.now
            let token = try newFactory.token()
            let results = await withTaskGroup(of: TokenVerificationError.Code?.self) { group in
                for _ in 0..<20 { group.addTask { await outcome(verifier, token) } }
                var all: [TokenVerificationError.Code?] = []
                for await result in group { all.append(result) }
                return all
            }
            #expect(results.allSatisfy { $0 == nil }, "\(results)")
            #expect(endpoint.requests == 2)
        }
    }
}

/// Collects key-source events.
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [KeySourceEvent] = []
    var record: KeySourceLogger { { [self] event in lock.withLock { events.append(event) } } }
    var errors: Int { lock.withLock { events.filter { $0.level == .error }.count } }
    var infos: [String] { lock.withLock { events.filter { $0.level == .info }.map(\.message) } }
    var messages: [String] { lock.withLock { events.map(\.message) } }
}

/// The result of `body`, or nil (and a recorded issue) when it has not returned within `seconds`: a
/// lost deadline then fails the test instead of hanging the run. The abandoned call is left running.
func returns<T: Sendable>(within seconds: Double, _ body: @escaping @Sendable () async throws -> T) async -> Result<T, any Error>? {
    let first = Locked<CheckedContinuation<Result<T, any Error>?, Never>?>(nil)
    let answer = await withCheckedContinuation { continuation in
        first.withLock { $0 = continuation }
        Task {
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            first.withLock { $0.take() }?.resume(returning: result)
        }
        Task {
            try? await Task.sleep(for: .seconds(seconds))
            first.withLock { $0.take() }?.resume(returning: nil)
        }
    }
    if answer == nil { Issue.record("no answer within \(seconds) s") }
    return answer
}

extension Result {
    var failure: Failure? { if case .failure(let error) = self { error } else { nil } }
}

/// Polls `condition` (a background refresh finishing). The 60 s bound only turns a hang into a failure:
/// on a busy machine a background task may wait seconds for a thread before it starts.
func waitUntil(_ condition: @Sendable () -> Bool) async throws {
    for _ in 0..<6_000 where !condition() { try await Task.sleep(for: .milliseconds(10)) }
    #expect(condition(), "condition not reached in time")
}
