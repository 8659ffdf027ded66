import Foundation
import TesseraJOSE
import TesseraPostgres
import TesseraTestSupport
import Testing

@testable import TesseraIssuer

/// Every `RefreshTokenStore` implementation, built fresh for one test with its own clock. PostgreSQL runs
/// when a server is there (`PostgresTestServer`), and always under CI.
enum StoreKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case memory, file, postgres
    var testDescription: String { rawValue }

    /// The kinds this run tests: every one, or all but PostgreSQL when no server answers (see `PostgresTestServer`).
    static var allCases: [StoreKind] { PostgresTestServer.enabled ? [.memory, .file, .postgres] : [.memory, .file] }
}

final class StoreFixture: @unchecked Sendable {
    let clock = SteppedClock()
    let folder: TemporaryDirectory
    let kind: StoreKind
    private(set) var store: any RefreshTokenStore
    /// Closed and dropped by the suites' `.postgresCleanup` trait when the test ends.
    private var database: TestDatabase?

    init(_ kind: StoreKind) async throws {
        self.kind = kind
        folder = try TemporaryDirectory("tessera-store")
        store = InMemoryRefreshTokenStore()
        if kind == .postgres { database = try await PostgresTestServer.createDatabase() }
        store = try make()
    }

    var dataPath: String { folder.appending("refresh") }

    private func make() throws -> any RefreshTokenStore {
        switch kind {
        case .memory: return InMemoryRefreshTokenStore(clock: clock.wallClock)
        case .file: return try FileRefreshTokenStore(directory: dataPath, options: .init(clock: clock.wallClock))
        case .postgres:
            return PostgresRefreshTokenStore(database: try database!.open(), clock: clock.wallClock)
        }
    }

    /// Closes and reopens a file store; for PostgreSQL, a new pool on the same database (another instance).
    /// A no-op for memory, which has nothing to reopen from.
    func reopen() throws {
        guard kind != .memory else { return }
        (store as? FileRefreshTokenStore)?.close()
        store = try make()
    }

    func issue(
        client: String = "app", subject: String = "alice", scope: [String] = ["read", "write"],
        policy: RefreshTokenPolicy = .standard
    ) async throws -> RefreshToken {
        try await store.issue(
            NewRefreshTokenFamily(
                clientID: client, subject: subject, scope: scope,
                authTime: clock.now, policy: policy)
        ).token
    }

    func rotate(_ token: RefreshToken, client: String = "app", scope: [String]? = nil) async throws -> RefreshToken {
        try await store.rotate(token, clientID: client, scope: scope).successor.token
    }

    deinit {
        (store as? FileRefreshTokenStore)?.close()
        folder.remove()
    }
}

/// The store's codes, named so `expectError` knows which error type is meant (FileError has some of the same names).
typealias StoreCode = RefreshTokenStoreError.Code

@Suite("RefreshTokenStore conformance (in-memory, file and PostgreSQL)", .postgresCleanup)
struct StoreConformanceTests {
    @Test("Tokens: tsr_ prefix, 256-bit secret, base64url, all distinct; records carry no token", arguments: StoreKind.allCases)
    func tokenFormat(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        var seen = Set<String>()
        for _ in 0..<200 {
            let issued = try await fixture.store.issue(
                NewRefreshTokenFamily(clientID: "app", subject: "alice", scope: ["read"], authTime: fixture.clock.now))
            let raw = issued.token.rawValue
            #expect(raw.hasPrefix("tsr_") && raw.count == 74)
            #expect(try Base64URL.decode(String(raw.dropFirst(4))).count == 52)
            #expect(seen.insert(raw).inserted)
            #expect(!"\(issued.token)".contains(String(raw.dropFirst(4).prefix(8))))
            #expect(!"\(issued.record)".contains(String(raw.dropFirst(4))))
            #expect(issued.record.state == .live && issued.record.scope == ["read"])
        }
    }

    @Test("RFC 6749 §6: a live token rotates once; its successor is live, it is not", arguments: StoreKind.allCases)
    func rotation(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let first = try await fixture.issue()
        fixture.clock.advance(60)
        let rotation = try await fixture.store.rotate(first, clientID: "app", scope: nil)
        #expect(!rotation.isRetry && rotation.grantedScope == ["read", "write"])
        #expect(rotation.successor.record.issuedAt == fixture.clock.now)
        #expect(try await fixture.store.record(for: first)?.state == .rotated)
        #expect(try await fixture.store.record(for: rotation.successor.token)?.state == .live)
        let third = try await fixture.rotate(rotation.successor.token)
        #expect(try await fixture.store.record(for: third)?.state == .live)
        let record = try #require(try await fixture.store.record(for: third))
        #expect(record.clientID == "app" && record.subject == "alice" && record.familyID == rotation.successor.record.familyID)
    }

    @Test("RFC 9700 §4.14.2: presenting a rotated-away token revokes the whole family", arguments: StoreKind.allCases)
    func reuseRevokesFamily(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let first = try await fixture.issue()
        let second = try await fixture.rotate(first)
        let third = try await fixture.rotate(second)
        let familyID = try #require(try await fixture.store.record(for: third)).familyID
        let error = await expectError(StoreCode.reuseDetected) { _ = try await fixture.rotate(first) }
        #expect(error?.familyID == familyID)
        #expect(error.map { !$0.message.contains(first.rawValue) } == true)
        // The live token of the family died with it; earlier tokens are still recognised as reuse.
        await expectError(StoreCode.revoked) { _ = try await fixture.rotate(third) }
        await expectError(StoreCode.reuseDetected) { _ = try await fixture.rotate(second) }
        #expect(try await fixture.store.record(for: third) == nil)
        try fixture.reopen()
        await expectError(StoreCode.revoked) { _ = try await fixture.rotate(third) }
        #expect(await fixture.store.statistics().families == 0)
        #expect(await fixture.store.statistics().revokedFamilies == 1)
    }

    @Test("RFC 9700 §4.14.2, THREATS C6: 64 concurrent rotations of one token: exactly one wins, 63 are reuse", arguments: StoreKind.allCases)
    func concurrentRotationOfOneToken(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let token = try await fixture.issue()
        let store = fixture.store
        let outcomes = await withTaskGroup(of: String.self) { group in
            for _ in 0..<64 {
                group.addTask {
                    do {
                        _ = try await store.rotate(token, clientID: "app", scope: nil)
                        return "ok"
                    } catch let error as RefreshTokenStoreError { return error.code.rawValue } catch { return "other" }
                }
            }
            return await group.reduce(into: [String: Int]()) { $0[$1, default: 0] += 1 }
        }
        #expect(outcomes == ["ok": 1, "reuse_detected": 63])
        #expect(await store.statistics().families == 0)
    }

    @Test("THREATS C6: 64 concurrent rotations of 64 distinct tokens all succeed, and the store stays consistent", arguments: StoreKind.allCases)
    func concurrentRotationOfDistinctTokens(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        var tokens: [RefreshToken] = []
        for index in 0..<64 { tokens.append(try await fixture.issue(subject: "user\(index)")) }
        let store = fixture.store
        let successors = try await withThrowingTaskGroup(of: (RefreshToken, RefreshToken).self) { group in
            for token in tokens {
                group.addTask {
                    var current = token
                    for _ in 0..<5 { current = try await store.rotate(current, clientID: "app", scope: nil).successor.token }
                    return (token, current)
                }
            }
            return try await group.reduce(into: [(RefreshToken, RefreshToken)]()) { $0.append($1) }
        }
        #expect(successors.count == 64)
        try fixture.reopen()
        for (original, last) in successors {
            #expect(try await fixture.store.record(for: last)?.state == .live)
            #expect(try await fixture.store.record(for: original)?.state == .rotated)
        }
        #expect(await fixture.store.statistics().families == 64)
    }

    @Test("RFC 6749 §6: the access-token scope may narrow, never widen; the refresh token keeps the granted scope", arguments: StoreKind.allCases)
    func scopeNarrowing(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let token = try await fixture.issue(scope: ["read", "write", "admin"])
        await expectError(StoreCode.invalidScope) { _ = try await fixture.store.rotate(token, clientID: "app", scope: ["read", "delete"]) }
        await expectError(StoreCode.invalidScope) { _ = try await fixture.store.rotate(token, clientID: "app", scope: []) }
        // A refused scope did not spend the token.
        #expect(try await fixture.store.record(for: token)?.state == .live)
        let narrowed = try await fixture.store.rotate(token, clientID: "app", scope: ["admin", "read"])
        #expect(narrowed.grantedScope == ["read", "admin"])
        #expect(narrowed.successor.record.scope == ["read", "write", "admin"])
        // Narrowing once does not lose the grant: the next rotation may ask for the whole scope again.
        let whole = try await fixture.store.rotate(narrowed.successor.token, clientID: "app", scope: ["write", "read", "admin"])
        #expect(whole.grantedScope == ["read", "write", "admin"])
    }

    @Test("Lifetimes: the idle lifetime runs from the last rotation, the absolute one from issue", arguments: StoreKind.allCases)
    func lifetimes(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let policy = RefreshTokenPolicy(absoluteLifetime: 1_000, idleLifetime: 300)
        var token = try await fixture.issue(policy: policy)
        let issued = try #require(try await fixture.store.record(for: token))
        #expect(issued.expiresAt == fixture.clock.now + 300 && issued.familyExpiresAt == fixture.clock.now + 1_000)
        for _ in 0..<3 {
            fixture.clock.advance(299)
            token = try await fixture.rotate(token)
        }
        // 897 s after issue: the idle limit ends at the family's absolute expiry.
        let record = try #require(try await fixture.store.record(for: token))
        #expect(record.expiresAt == record.familyExpiresAt)
        fixture.clock.advance(103)
        await expectError(StoreCode.expired) { _ = try await fixture.rotate(token) }
        #expect(try await fixture.store.record(for: token) == nil)

        let idle = try await fixture.issue(policy: policy)
        fixture.clock.advance(299)
        #expect(try await fixture.store.record(for: idle)?.state == .live)
        fixture.clock.advance(1)
        await expectError(StoreCode.expired) { _ = try await fixture.rotate(idle) }
        #expect(try await fixture.store.forgetExpired() == 2)
        #expect(await fixture.store.statistics().families == 0)
    }

    @Test("Retry window: the same successor within it (no new pair), reuse outside it", arguments: StoreKind.allCases)
    func retryWindow(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let token = try await fixture.issue(policy: RefreshTokenPolicy(retryWindow: 30))
        let first = try await fixture.store.rotate(token, clientID: "app", scope: nil)
        fixture.clock.advance(30)
        try fixture.reopen()  // also after a restart
        let retry = try await fixture.store.rotate(token, clientID: "app", scope: ["read"])
        #expect(retry.isRetry && retry.successor.token == first.successor.token && retry.grantedScope == ["read"])
        #expect(retry.successor.record == first.successor.record)
        fixture.clock.advance(1)
        await expectError(StoreCode.reuseDetected) { _ = try await fixture.store.rotate(token, clientID: "app", scope: nil) }
        await expectError(StoreCode.revoked) { _ = try await fixture.rotate(first.successor.token) }

        // Once the successor was used, a retry of its predecessor is reuse even inside the window.
        let other = try await fixture.issue(policy: RefreshTokenPolicy(retryWindow: 60))
        let next = try await fixture.rotate(other)
        _ = try await fixture.rotate(next)
        await expectError(StoreCode.reuseDetected) { _ = try await fixture.rotate(other) }

        // Without a window (the default) a replay is reuse at once.
        let plain = try await fixture.issue()
        _ = try await fixture.rotate(plain)
        await expectError(StoreCode.reuseDetected) { _ = try await fixture.rotate(plain) }
    }

    @Test("RFC 7009 §2.1: revoking a token ends its family; only the owning client may", arguments: StoreKind.allCases)
    func revokeFamily(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let first = try await fixture.issue()
        let second = try await fixture.rotate(first)
        let bystander = try await fixture.issue(subject: "bob")
        await expectError(StoreCode.clientMismatch) { _ = try await fixture.store.revokeFamily(of: second, clientID: "other") }
        #expect(try await fixture.store.revokeFamily(of: first, clientID: "app"))  // a stale token of the family still ends it
        #expect(try await fixture.store.revokeFamily(of: second, clientID: "app") == false)
        await expectError(StoreCode.revoked) { _ = try await fixture.rotate(second) }
        await expectError(StoreCode.reuseDetected) { _ = try await fixture.rotate(first) }
        #expect(try await fixture.store.revokeFamily(of: RefreshToken("not-a-token"), clientID: "app") == false)
        try fixture.reopen()
        await expectError(StoreCode.revoked) { _ = try await fixture.rotate(second) }
        #expect(try await fixture.store.record(for: bystander)?.state == .live)
    }

    @Test("Revocation by client, by subject, and of everything", arguments: StoreKind.allCases)
    func bulkRevocation(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let a1 = try await fixture.issue(client: "a", subject: "alice")
        let a2 = try await fixture.issue(client: "a", subject: "bob")
        let b1 = try await fixture.issue(client: "b", subject: "alice")
        let b2 = try await fixture.issue(client: "b", subject: "carol")
        #expect(try await fixture.store.revokeFamilies(ofClient: "a") == 2)
        #expect(try await fixture.store.revokeFamilies(ofClient: "nobody") == 0)
        #expect(try await fixture.store.revokeFamilies(ofSubject: "alice") == 1)
        try fixture.reopen()
        for token in [a1, a2, b1] { #expect(try await fixture.store.record(for: token) == nil) }
        #expect(try await fixture.store.record(for: b2)?.state == .live)
        #expect(try await fixture.store.revokeAllFamilies() == 1)
        try fixture.reopen()
        #expect(try await fixture.store.record(for: b2) == nil)
        #expect(await fixture.store.statistics().families == 0)
    }

    @Test("RFC 6749 §6: unknown, malformed, forged and other clients' tokens fail and change nothing", arguments: StoreKind.allCases)
    func plainFailures(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let token = try await fixture.issue()
        await expectError(StoreCode.clientMismatch) { _ = try await fixture.rotate(token, client: "other") }
        await expectError(StoreCode.malformedToken) { _ = try await fixture.rotate(RefreshToken("")) }
        await expectError(StoreCode.malformedToken) { _ = try await fixture.rotate(RefreshToken(token.rawValue + "A")) }
        await expectError(StoreCode.malformedToken) { _ = try await fixture.rotate(RefreshToken("xyz_" + token.rawValue.dropFirst(4))) }
        await expectError(StoreCode.malformedToken) { _ = try await fixture.rotate(RefreshToken(String(repeating: "A", count: 1 << 20))) }
        // Same family and generation, wrong secret: a forgery, not reuse — the family survives.
        var bytes = try Base64URL.decode(String(token.rawValue.dropFirst(4)))
        bytes[40] ^= 1
        await expectError(StoreCode.unknownToken) { _ = try await fixture.rotate(RefreshToken("tsr_" + Base64URL.encode(bytes))) }
        // A generation from the future is unknown too.
        bytes[40] ^= 1
        bytes[19] = 9
        await expectError(StoreCode.unknownToken) { _ = try await fixture.rotate(RefreshToken("tsr_" + Base64URL.encode(bytes))) }
        let fresh = RefreshToken(familyID: try SecureRandom.bytes(count: 16), generation: 1, secret: try SecureRandom.bytes(count: 32))
        await expectError(StoreCode.unknownToken) { _ = try await fixture.rotate(fresh) }
        #expect(try await fixture.store.record(for: token)?.state == .live)
        _ = try await fixture.rotate(token)
    }

    @Test("Bad input is refused with a specific code: policies, field lengths, RFC 6749 §3.3 scope characters", arguments: StoreKind.allCases)
    func badInput(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        await expectError(StoreCode.invalidRequest) { _ = try await fixture.issue(policy: RefreshTokenPolicy(retryWindow: 61)) }
        await expectError(StoreCode.invalidRequest) {
            _ = try await fixture.issue(policy: RefreshTokenPolicy(absoluteLifetime: 10, idleLifetime: 20))
        }
        await expectError(StoreCode.invalidRequest) { _ = try await fixture.issue(policy: RefreshTokenPolicy(absoluteLifetime: 0)) }
        await expectError(StoreCode.invalidRequest) { _ = try await fixture.issue(client: "") }
        await expectError(StoreCode.invalidRequest) { _ = try await fixture.issue(client: String(repeating: "c", count: 256)) }
        await expectError(StoreCode.invalidRequest) { _ = try await fixture.issue(subject: String(repeating: "s", count: 1_025)) }
        await expectError(StoreCode.invalidRequest) { _ = try await fixture.issue(scope: (0..<1_000).map { "scope\($0)" }) }
        await expectError(StoreCode.invalidScope) { _ = try await fixture.issue(scope: ["read write"]) }
        await expectError(StoreCode.invalidScope) { _ = try await fixture.issue(scope: ["quote\""]) }
        await expectError(StoreCode.invalidScope) { _ = try await fixture.issue(scope: [""]) }
        #expect(await fixture.store.statistics().families == 0)
        let token = try await fixture.issue(subject: "ünïcødé ✓", scope: ["read", "read", "write"])
        #expect(try await fixture.store.record(for: token)?.scope == ["read", "write"])
        try fixture.reopen()
        #expect(try await fixture.store.record(for: token)?.subject == "ünïcødé ✓")
    }

    @Test("THREATS C12: clock steps of ±1 h never date a successor before its predecessor nor widen the retry window", arguments: StoreKind.allCases)
    func clockSteps(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let token = try await fixture.issue(policy: RefreshTokenPolicy(retryWindow: 60))
        let issuedAt = try #require(try await fixture.store.record(for: token)).issuedAt
        fixture.clock.advance(3_600)
        let forward = try await fixture.store.rotate(token, clientID: "app", scope: nil)
        #expect(forward.successor.record.issuedAt == issuedAt + 3_600)
        fixture.clock.advance(-3_600)
        // The clock went back an hour: a retry now is not "within 60 s" of a rotation an hour ahead.
        await expectError(StoreCode.reuseDetected) { _ = try await fixture.rotate(token) }

        let second = try await fixture.issue()
        fixture.clock.advance(-3_600)
        let back = try await fixture.store.rotate(second, clientID: "app", scope: nil)
        let before = try #require(try await fixture.store.record(for: back.successor.token))
        #expect(before.issuedAt >= fixture.clock.now + 3_600)
        #expect(before.issuedAt <= fixture.clock.now + 3_600)
    }
}

@Suite("Refresh-token stores: live families per user and client (issue 18, item 12)", .postgresCleanup)
struct FamilyCapTests {
    @Test(
        "Beyond 100 live families of one user and client the oldest is revoked; other pairs, revoked families and a restart keep the count right",
        arguments: StoreKind.allCases)
    func cap(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let cap = RefreshTokenLedger.maximumFamiliesPerGrant
        let bob = try await fixture.issue(subject: "bob")
        let otherClient = try await fixture.issue(client: "other", subject: "alice")
        // "é" precomposed and decomposed are different subjects: each has its own count.
        let decomposed = try await fixture.issue(subject: "e\u{301}")
        var alice: [RefreshToken] = []
        for _ in 0..<cap { alice.append(try await fixture.issue()) }
        #expect(try await fixture.store.record(for: alice[0])?.state == .live)
        alice.append(try await fixture.issue())  // one over: the oldest goes
        #expect(try await fixture.store.record(for: alice[0]) == nil)
        await expectError(StoreCode.revoked) { _ = try await fixture.rotate(alice[0]) }
        #expect(try await fixture.store.record(for: alice[1])?.state == .live)
        // A family revoked by its client frees a place: the next issue revokes nothing.
        #expect(try await fixture.store.revokeFamily(of: alice[5], clientID: "app"))
        alice.append(try await fixture.issue())
        #expect(try await fixture.store.record(for: alice[1])?.state == .live)
        try fixture.reopen()  // the index is rebuilt from the log
        alice.append(try await fixture.issue())
        #expect(try await fixture.store.record(for: alice[1]) == nil)
        #expect(try await fixture.store.record(for: alice[2])?.state == .live)
        for token in [bob, otherClient, decomposed] { #expect(try await fixture.store.record(for: token)?.state == .live) }
        let live = try await (0..<alice.count).asyncFilter { try await fixture.store.record(for: alice[$0])?.state == .live }
        #expect(live.count == cap)
    }
}

extension Sequence {
    func asyncFilter(_ predicate: (Element) async throws -> Bool) async rethrows -> [Element] {
        var kept: [Element] = []
        for element in self where try await predicate(element) { kept.append(element) }
        return kept
    }
}
