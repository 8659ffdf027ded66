import Foundation
import Logging
import TesseraJOSE
import TesseraPostgres
import TesseraTestSupport
import Testing

@testable import TesseraIssuer

@Suite(
    "Instances hear of key ring and registry changes by LISTEN/NOTIFY (issue 16)", .postgresCleanup,
    .enabled(if: PostgresTestServer.enabled, PostgresTestServer.skipReason))
struct PostgresNotifyTests {
    /// Polls `condition` every 20 ms for up to `seconds`; returns how long it took to hold, nil if it never did.
    static func within(_ seconds: Double, _ condition: () async throws -> Bool) async throws -> Double? {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < .milliseconds(Int(seconds * 1000)) {
            if try await condition() {
                let elapsed = ContinuousClock.now - start
                return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    @Test(
        "An instance whose polling is an hour apart still sees a new key, a revocation, a new user, and after a rewrap a rotation, within a second of the commit"
    )
    func notifiedChanges() async throws {
        let folder = try TemporaryDirectory("tessera-pg-notify")
        defer { folder.remove() }
        let database = try await PostgresTestServer.createDatabase()
        let (operatorPool, instancePool) = (try database.open(), try database.open())
        let kek = try KeyEncryptionKey.create(at: folder.appending("kek"))
        let operatorRing = PostgresKeyRing(database: operatorPool, kek: kek)
        _ = try await operatorRing.generate(.es256, activate: true, now: Date())
        // The instance: its registries and its key ring followed by a maintenance that polls once an hour.
        let registries = PostgresRegistries(database: instancePool)
        let maintenance = PostgresMaintenance(
            database: instancePool, registries: registries, refreshTokens: PostgresRefreshTokenStore(database: instancePool),
            failures: PostgresFailureCounts(database: instancePool), logger: Logger(label: "test"))
        let follower = try await PostgresKeyRingFollower(ring: PostgresKeyRing(database: instancePool, kek: kek))
        maintenance.keys = follower
        let running = Task { try await maintenance.run(interval: .seconds(3600)) }
        defer { running.cancel() }
        let published = { Set(follower.signing.current.jwks.keys.compactMap(\.keyID)) }
        // First change: seen once the instance listens (its first look when listening starts, or the notice).
        let pending = try await operatorRing.generate(.es256, activate: false, now: Date())
        #expect(try await Self.within(10) { published().contains(pending.kid) } != nil, "the new key never reached the instance")
        // From here only a notification can bring a change before the hour is up.
        let revoked = pending.kid
        _ = try await operatorRing.update { ring, _ in _ = try ring.revoke(revoked, now: Date()) }
        let revocation = try await Self.within(5) { !published().contains(revoked) }
        #expect(revocation.map { $0 < 1 } == true, "the revocation took \(revocation.map { "\($0) s" } ?? "more than 5 s")")
        try await PostgresRegistries(database: operatorPool).users.add("carol", password: "a long passphrase", claims: [], now: Date())
        let user = try await Self.within(5) { registries.users.current().contains { $0.username == "carol" } }
        #expect(user.map { $0 < 1 } == true, "the new user took \(user.map { "\($0) s" } ?? "more than 5 s")")
        // After a rewrap the instance, still on the previous key-encryption key, follows a rotation to a key it
        // already publishes: it holds every key it needs and unseals none.
        let next = try await operatorRing.generate(.es256, activate: false, now: Date())
        #expect(try await Self.within(5) { published().contains(next.kid) } != nil)
        let newKEK = try KeyEncryptionKey.create(at: folder.appending("new"))
        try await operatorRing.rewrap(to: newKEK)
        _ = try await PostgresKeyRing(database: operatorPool, kek: newKEK).update { ring, _ in ring.rotate(.es256, now: Date(), force: true) }
        let rotated = try await Self.within(5) { follower.signing.current.signer(.es256)?.keyID == next.kid }
        #expect(rotated.map { $0 < 1 } == true, "the rotation took \(rotated.map { "\($0) s" } ?? "more than 5 s")")
    }
}
