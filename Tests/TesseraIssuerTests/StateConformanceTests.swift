import Foundation
import TesseraJOSE
import TesseraPostgres
import TesseraTestSupport
import Testing

@testable import TesseraIssuer

/// The issuer's state besides refresh families, on each backend: the embedded one (files and memory) and
/// PostgreSQL (when a server is there; always under CI). `other` is a second instance on the same state:
/// for PostgreSQL another pool on the database, for the embedded backend the same objects (one process).
final class StateFixture: @unchecked Sendable {
    struct Instance {
        let clients: any ClientRegistryStore
        let directory: any ClientDirectory
        let users: any UserRegistryStore
        let consents: any ConsentRecords
        let codes: any AuthorizationCodeRecords
        let sessions: any BrowserSessionRecords
        let failures: any FailureCounting
        /// Makes registry changes visible to `directory` (PostgreSQL polls; files are re-read by themselves).
        let refresh: @Sendable () async throws -> Void
    }

    enum Kind: String, CaseIterable, CustomTestStringConvertible, Sendable {
        case embedded, postgres
        var testDescription: String { rawValue }
        static var allCases: [Kind] { PostgresTestServer.enabled ? [.embedded, .postgres] : [.embedded] }
    }

    let clock = SteppedClock()
    let seconds = Seconds()
    let folder: TemporaryDirectory
    private(set) var one: Instance!
    private(set) var other: Instance!

    init(_ kind: Kind) async throws {
        folder = try TemporaryDirectory("tessera-state")
        switch kind {
        case .embedded:
            let data = folder.appending("data")
            let clients = ClientStore(dataPath: data)
            let directory = try ReloadingClientRegistry(store: clients)
            let instance = Instance(
                clients: clients, directory: directory, users: UserStore(dataPath: data), consents: ConsentStore(dataPath: data),
                codes: AuthorizationCodeStore(clock: clock.wallClock),
                sessions: BrowserSessions(clock: clock.wallClock), failures: FailureThrottle(now: { [seconds] in seconds.now }), refresh: {})
            (one, other) = (instance, instance)
        case .postgres:
            let database = try await PostgresTestServer.createDatabase()
            (one, other) = (try instance(database.open()), try instance(database.open()))
        }
    }

    private func instance(_ database: PostgresDatabase) -> Instance {
        let registries = PostgresRegistries(database: database)
        let clients = registries.clients
        return Instance(
            clients: clients, directory: clients, users: registries.users, consents: PostgresConsents(database: database),
            codes: PostgresAuthorizationCodes(database: database, clock: clock.wallClock),
            sessions: PostgresBrowserSessions(database: database, clock: clock.wallClock, clients: { clients.current() }),
            failures: PostgresFailureCounts(database: database), refresh: { try await registries.refresh() })
    }

    static let app = Client(
        id: "app", type: .public, secretDigest: nil, grants: [.authorizationCode], scopes: ["read", "write"], defaultScopes: ["read"],
        audience: "api", redirectURIs: ["https://app.example/cb"], created: Date(timeIntervalSince1970: 1_800_000_000))

    static let request: [String: String] = [
        "response_type": "code", "client_id": "app", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256", "state": "st", "scope": "read",
    ]

    /// Registers `app` and makes both instances see it.
    func registerApp() async throws {
        try await one.clients.add(Self.app)
        try await one.refresh()
        try await other.refresh()
    }

    func validRequest() throws -> AuthorizationRequest {
        guard case .valid(let request) = AuthorizationRequest.validate(Self.request, registry: one.directory.current()) else {
            throw TestSupportError("the test request does not validate")
        }
        return request
    }

    static func record(subject: String = "sub-alice") -> AuthorizationCodeGrantRecord {
        AuthorizationCodeGrantRecord(
            clientID: "app", redirectURI: "https://app.example/cb", challenge: ("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", .s256),
            scope: ["openid", "read"], subject: subject, authTime: Date(timeIntervalSince1970: 1_800_000_000),
            openID: OpenIDGrant(sessionID: "sid-1", claims: ClaimsRequest(userinfo: ["email"])), nonce: "n-1")
    }

    deinit { folder.remove() }
}

@Suite("Issuer state conformance: codes, sessions, consents, registries, failure counts (embedded and PostgreSQL)", .postgresCleanup)
struct StateConformanceTests {
    typealias Kind = StateFixture.Kind

    @Test(
        "Codes: issued at one instance, redeemed once at another with the whole record; a replay names the family; another client's attempt spends nothing",
        arguments: Kind.allCases)
    func codesAcrossInstances(kind: Kind) async throws {
        let fixture = try await StateFixture(kind)
        let code = try await fixture.one.codes.issue(StateFixture.record())
        guard case .failed = try await fixture.other.codes.redeem(code, clientID: "intruder") else {
            throw TestSupportError("another client redeemed")
        }
        guard case .fresh(let record) = try await fixture.other.codes.redeem(code, clientID: "app") else { throw TestSupportError("not fresh") }
        #expect(record.subject == "sub-alice" && record.scope == ["openid", "read"] && record.nonce == "n-1")
        #expect(record.challenge?.value == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" && record.challenge?.method == .s256)
        #expect(record.openID == OpenIDGrant(sessionID: "sid-1", claims: ClaimsRequest(userinfo: ["email"])))
        #expect(record.redirectURI == "https://app.example/cb")
        // A replay before the family is attached: the exchange learns it must revoke what it issued.
        guard case .replayed(nil) = try await fixture.one.codes.redeem(code, clientID: "app") else { throw TestSupportError("replay not seen") }
        #expect(try await fixture.other.codes.attach(familyID: "family-1", to: code))
        guard case .replayed("family-1") = try await fixture.one.codes.redeem(code, clientID: "app") else { throw TestSupportError("no family") }
        // Sixty seconds, then gone.
        let late = try await fixture.one.codes.issue(StateFixture.record())
        fixture.clock.advance(AuthorizationCodeStore.lifetime)
        guard case .failed = try await fixture.other.codes.redeem(late, clientID: "app") else { throw TestSupportError("expired code redeemed") }
    }

    @Test("Codes: 32 concurrent redemptions of one code across instances: exactly one fresh", arguments: Kind.allCases)
    func concurrentRedemptions(kind: Kind) async throws {
        let fixture = try await StateFixture(kind)
        let code = try await fixture.one.codes.issue(StateFixture.record())
        let fresh = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<32 {
                let codes = index % 2 == 0 ? fixture.one.codes : fixture.other.codes
                group.addTask {
                    if case .fresh = try await codes.redeem(code, clientID: "app") { return true }
                    return false
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(fresh == 1)
    }

    @Test("Codes: a user holds at most 10 unused codes for one client; an 11th retires the oldest", arguments: Kind.allCases)
    func openCodesBound(kind: Kind) async throws {
        let fixture = try await StateFixture(kind)
        var codes: [String] = []
        for _ in 0...AuthorizationCodeStore.openCodesPerGrant { codes.append(try await fixture.one.codes.issue(StateFixture.record())) }
        guard case .failed = try await fixture.other.codes.redeem(codes[0], clientID: "app") else { throw TestSupportError("oldest kept") }
        guard case .fresh = try await fixture.other.codes.redeem(codes[1], clientID: "app") else { throw TestSupportError("second dropped") }
        guard case .fresh = try await fixture.other.codes.redeem(codes.last!, clientID: "app") else { throw TestSupportError("newest dropped") }
    }

    @Test(
        "Sessions: a session and its open request made at one instance are found at the other; sign-in moves the request to a new cookie and kills the old one",
        arguments: Kind.allCases)
    func sessionsAcrossInstances(kind: Kind) async throws {
        let fixture = try await StateFixture(kind)
        try await fixture.registerApp()
        let session = try await fixture.one.sessions.sessionOrNew(nil)
        let seen = try #require(try await fixture.other.sessions.session(session.cookie))
        #expect(seen.csrfToken == session.csrfToken && seen.username == nil)
        let pending = try await fixture.one.sessions.open(try fixture.validRequest(), in: session, hintedSubject: "hinted")
        let found = try #require(try await fixture.other.sessions.pending(pending.handle, in: session))
        #expect(found.request.parameters == StateFixture.request && found.request.state == "st" && found.hintedSubject == "hinted")
        #expect(try await fixture.other.sessions.pending(pending.handle, in: try await fixture.one.sessions.sessionOrNew(nil)) == nil)
        let user = User(username: "alice", password: "x", created: Date(), subject: "sub-alice")
        let signedIn = try await fixture.other.sessions.signIn(session, user: user, handle: pending.handle)
        #expect(signedIn.cookie != session.cookie && signedIn.csrfToken != session.csrfToken && signedIn.sessionID != nil)
        #expect(try await fixture.one.sessions.session(session.cookie) == nil)
        let now = try #require(try await fixture.one.sessions.session(signedIn.cookie))
        #expect(now.username == "alice" && now.subject == "sub-alice" && now.sessionID == signedIn.sessionID)
        let moved = try #require(try await fixture.one.sessions.pending(pending.handle, in: signedIn))
        #expect(moved.signedInHere)
        try await fixture.other.sessions.close(pending.handle, in: signedIn)
        #expect(try await fixture.one.sessions.pending(pending.handle, in: signedIn) == nil)
        try await fixture.one.sessions.end(signedIn)
        #expect(try await fixture.other.sessions.session(signedIn.cookie) == nil)
    }

    @Test("Sessions: idle past the lifetime, the session is gone; an open request expires after its own lifetime", arguments: Kind.allCases)
    func sessionLifetimes(kind: Kind) async throws {
        let fixture = try await StateFixture(kind)
        try await fixture.registerApp()
        let policy = fixture.one.sessions.policy
        let session = try await fixture.one.sessions.sessionOrNew(nil)
        let pending = try await fixture.one.sessions.open(try fixture.validRequest(), in: session, hintedSubject: nil)
        fixture.clock.advance(policy.pendingLifetime)
        #expect(try await fixture.other.sessions.session(session.cookie) != nil)
        #expect(try await fixture.other.sessions.pending(pending.handle, in: session) == nil)
        fixture.clock.advance(policy.idleLifetime)
        #expect(try await fixture.other.sessions.session(session.cookie) == nil)
    }

    @Test("Consents: remembered scopes cover a subset, grow by union, and are forgotten by user or client", arguments: Kind.allCases)
    func consents(kind: Kind) async throws {
        let fixture = try await StateFixture(kind)
        let (one, other) = (fixture.one.consents, fixture.other.consents)
        try await one.remember(username: "alice", clientID: "app", scope: ["read"], now: Date())
        #expect(try await other.covers(username: "alice", clientID: "app", scope: ["read"]))
        #expect(try await !other.covers(username: "alice", clientID: "app", scope: ["read", "write"]))
        #expect(try await !other.covers(username: "Alice", clientID: "app", scope: ["read"]))
        try await other.remember(username: "alice", clientID: "app", scope: ["write"], now: Date())
        #expect(try await one.covers(username: "alice", clientID: "app", scope: ["read", "write"]))
        try await one.remember(username: "bob", clientID: "app", scope: ["read"], now: Date())
        try await one.remember(username: "alice", clientID: "other", scope: ["read"], now: Date())
        #expect(try await other.forget(username: nil, clientID: "app") == 2)
        #expect(try await one.consents().map(\.clientID) == ["other"])
        #expect(try await other.forget(username: "alice", clientID: nil) == 1)
    }

    @Test(
        "Registries: a client id and a username never coincide; changes show at the other instance; removing a user drops their consents",
        arguments: Kind.allCases)
    func registries(kind: Kind) async throws {
        let fixture = try await StateFixture(kind)
        try await fixture.registerApp()
        #expect(fixture.other.directory.current().client("app") != nil)
        await expectRegistration(.nameTaken) { try await fixture.other.users.add("app", password: "a long password", claims: [], now: Date()) }
        await expectRegistration(.clientExists) { try await fixture.other.clients.add(StateFixture.app) }
        try await fixture.one.users.add("alice", password: "a long password", claims: ["email=alice@example.com"], now: Date())
        await expectRegistration(.userExists) { try await fixture.other.users.add("alice", password: "another password", claims: [], now: Date()) }
        var taken = StateFixture.app
        taken.id = "alice"
        await expectRegistration(.nameTaken) { try await fixture.other.clients.add(taken) }
        let alice = try #require(try await fixture.other.users.users().named("alice"))
        #expect(alice.claims["email"] == .string("alice@example.com") && !alice.subject.isEmpty)
        let changed = try await fixture.other.users.set("alice", claims: ["email="], now: Date())
        #expect(changed.claims["email"] == nil && changed.subject == alice.subject)
        try await fixture.one.users.replaceHash("alice", with: "scrypt$new", replacing: "not the stored hash")
        #expect(try await fixture.other.users.users().named("alice")?.password == alice.password)
        try await fixture.one.consents.remember(username: "alice", clientID: "app", scope: ["read"], now: Date())
        #expect(try await fixture.other.users.remove("alice"))
        #expect(try await fixture.one.consents.consents().isEmpty)
        #expect(try await !fixture.other.users.remove("alice"))
        let renamed = try await fixture.other.clients.update { registry -> Int in
            registry.clients[0].scopes.append("admin")
            return registry.clients.count
        }
        try await fixture.one.refresh()
        #expect(renamed == 1 && fixture.one.directory.current().client("app")?.scopes == ["read", "write", "admin"])
    }

    @Test(
        "Failure counts: five free failures, then a block both instances see; guesses spread over instances add up; a success clears only its own count",
        arguments: Kind.allCases)
    func failureCounts(kind: Kind) async throws {
        let fixture = try await StateFixture(kind)
        let keys = FailureThrottle.user("alice", address: "203.0.113.5")
        #expect(try await fixture.one.failures.check(keys).retryAfter == nil)
        for index in 0..<5 { try await (index % 2 == 0 ? fixture.one : fixture.other).failures.recordFailure(keys) }
        let before = try await fixture.other.failures.check(keys)
        #expect(before.retryAfter == nil && before.clearable.count == 1)
        try await fixture.other.failures.recordFailure(keys)
        let wait = try await fixture.one.failures.check(keys).retryAfter
        #expect(wait == 1)
        // The same user from another address is not held back, and a success there has nothing to clear.
        let elsewhere = try await fixture.other.failures.check(FailureThrottle.user("alice", address: "192.0.2.10"))
        #expect(elsewhere.retryAfter == nil)
        if kind == .postgres { #expect(elsewhere.clearable.isEmpty) }
        try await fixture.one.failures.clear(after: before)
        let cleared = try await fixture.other.failures.check([keys[0]])
        #expect(cleared.retryAfter == nil)
    }

    private func expectRegistration(_ code: RegistrationError.Code, _ body: () async throws -> Void) async {
        do {
            try await body()
            Issue.record("no error; expected \(code)")
        } catch let error as RegistrationError {
            #expect(error.code == code, "\(error)")
        } catch {
            Issue.record("\(error); expected \(code)")
        }
    }
}

@Suite(
    "PostgreSQL upkeep: the clean-up and the start-up checks", .postgresCleanup,
    .enabled(if: PostgresTestServer.enabled, PostgresTestServer.skipReason))
struct PostgresUpkeepTests {
    @Test("The clean-up deletes expired codes, idle sessions with their open requests and quiet failure counts, and keeps what is live")
    func sweep() async throws {
        let database = try await PostgresTestServer.createDatabase()
        let pool = try database.open()
        let clock = SteppedClock()
        let registries = PostgresRegistries(database: pool)
        try await registries.clients.add(StateFixture.app)
        try await registries.refresh()
        let codes = PostgresAuthorizationCodes(database: pool, clock: clock.wallClock)
        let sessions = PostgresBrowserSessions(database: pool, clock: clock.wallClock, clients: { registries.clients.current() })
        let failures = PostgresFailureCounts(database: pool)
        let maintenance = PostgresMaintenance(
            database: pool, registries: registries, refreshTokens: PostgresRefreshTokenStore(database: pool, clock: clock.wallClock),
            failures: failures, clock: clock.wallClock, logger: PostgresDatabase.quietLogger)
        let old = try await sessions.sessionOrNew(nil)
        guard case .valid(let request) = AuthorizationRequest.validate(StateFixture.request, registry: registries.clients.current()) else {
            throw TestSupportError("the request does not validate")
        }
        _ = try await sessions.open(request, in: old, hintedSubject: nil)
        _ = try await codes.issue(StateFixture.record())
        try await failures.recordFailure(FailureThrottle.client("app", address: "192.0.2.1"))
        // The failure counts run on the database's clock: age this one past its window by hand.
        try await pool.execute("UPDATE failure_counts SET last_failure = last_failure - 3600, blocked_until = 0")
        clock.advance(SessionPolicy().idleLifetime)
        let live = try await sessions.sessionOrNew(nil)
        let removed = try await maintenance.sweep()
        #expect(removed["authorization_codes"] == 1 && removed["browser_sessions"] == 1 && removed["failure_counts"] == 2, "\(removed)")
        #expect(try await pool.strings("SELECT count(*)::text FROM pending_authorizations") == ["0"])
        #expect(try await sessions.session(live.cookie) != nil)
        #expect(try await maintenance.sweep().values.reduce(0, +) == 0)
    }

    @Test("tessera serve refuses a database without the schema, naming the command that makes it")
    func serveRefusesUnmigrated() async throws {
        let database = try await PostgresTestServer.createDatabase(migrated: false)
        let folder = try TemporaryDirectory("tessera-unmigrated")
        defer { folder.remove() }
        let serve = try await runTessera([
            "serve", "--port", "0", "--metrics-address", "off", "--keys", folder.appending("keys"), "--database", database.address,
        ])
        #expect(serve.status != 0 && serve.err.contains("tessera db migrate"), "\(serve.err)")
        #expect(!serve.err.contains("tessera:tessera@"), "the password must not show")
    }

    @Test("tessera store check --database reads every client and user back: intact, then a hand-edited row named, exit 1")
    func storeCheck() async throws {
        let database = try await PostgresTestServer.createDatabase()
        let added = try await runTessera(["clients", "add", "svc", "--scope", "read", "--database", database.address])
        #expect(added.status == 0, "\(added.err)")
        let intact = try await runTessera(["store", "check", "--database", database.address])
        #expect(intact.status == 0 && intact.out.contains("intact") && intact.out.contains("clients: 1"), "\(intact.out) \(intact.err)")
        let pool = try database.open()
        try await pool.execute("UPDATE clients SET document = '{\"id\": \"svc\"' WHERE client_id = 'svc'")
        let damaged = try await runTessera(["store", "check", "--database", database.address, "--json"])
        #expect(damaged.status == 1 && damaged.out.contains("clients row \\\"svc\\\""), "\(damaged.out) \(damaged.err)")
        let repair = try await runTessera(["store", "repair", "--database", database.address])
        #expect(repair.status != 0 && repair.err.contains("PostgreSQL recovers"), "\(repair.err)")
    }
}

extension StateConformanceTests {
    @Test(
        "Consents: 16 concurrent \"remember\"s of different scopes for one user and client, at two instances, keep every scope",
        arguments: Kind.allCases)
    func concurrentConsents(kind: Kind) async throws {
        let fixture = try await StateFixture(kind)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<16 {
                let consents = index % 2 == 0 ? fixture.one.consents : fixture.other.consents
                group.addTask { try await consents.remember(username: "alice", clientID: "app", scope: ["s\(index)"], now: Date()) }
            }
            try await group.waitForAll()
        }
        let all = (0..<16).map { "s\($0)" }
        #expect(try await fixture.other.consents.covers(username: "alice", clientID: "app", scope: all))
        #expect(try await fixture.one.consents.consents().first?.scopes == all.sorted())
    }
}
