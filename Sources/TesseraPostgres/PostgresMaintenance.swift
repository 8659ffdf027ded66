import Foundation
public import Logging
import PostgresNIO
public import TesseraIssuer

/// What a `tessera serve` on PostgreSQL does beside its requests: every second it follows the client and
/// user registries (one small query when nothing changed), and every minute it deletes what has expired —
/// codes, browser sessions and their open requests, quiet failure counts, refresh-token families — in
/// batches of 1,000 rows through their expiry indexes. Several instances doing it at once only share the work.
///
/// Its last look at the database is also the instance's readiness: `problem` says why it failed.
public final class PostgresMaintenance: @unchecked Sendable {
    let database: PostgresDatabase
    let registries: PostgresRegistries
    let refreshTokens: PostgresRefreshTokenStore
    let failures: PostgresFailureCounts
    let policy: SessionPolicy
    let clock: WallClock
    let logger: Logger
    private let lock = NSLock()
    private var lastProblem: String?
    private var lastLook: Double = 0
    /// The server's key ring when the database keeps it: followed at every look.
    public var keys: PostgresKeyRingFollower?

    public init(
        database: PostgresDatabase, registries: PostgresRegistries, refreshTokens: PostgresRefreshTokenStore, failures: PostgresFailureCounts,
        policy: SessionPolicy = SessionPolicy(), clock: WallClock = .system, logger: Logger
    ) {
        self.database = database
        self.registries = registries
        self.refreshTokens = refreshTokens
        self.failures = failures
        self.policy = policy
        self.clock = clock
        self.logger = logger
    }

    /// How long one look waits for the database: the longest a load balancer keeps sending requests that
    /// each wait out their own deadline, before they fail at once.
    static let lookTimeout: Duration = .seconds(2)

    /// Nil while the last look at the database succeeded; why it failed otherwise.
    public var problem: String? { lock.withLock { lastProblem } }

    /// Seconds the last look at the database took (`tessera_database_look_seconds`).
    public var lookSeconds: Double { lock.withLock { lastLook } }

    /// One look: reloads changed registries. Throws what the database said.
    public func refresh() async throws {
        let started = ContinuousClock.now
        defer {
            let elapsed = ContinuousClock.now - started
            lock.withLock { lastLook = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18 }
        }
        do {
            try await registries.refresh(timeout: Self.lookTimeout)
            try await keys?.follow()
            database.outage = nil
            let recovered = lock.withLock {
                defer { lastProblem = nil }
                return lastProblem != nil
            }
            if recovered { logger.notice("PostgreSQL answers again") }
        } catch {
            let message = (error as? DatabaseError)?.message ?? "\(error)"
            database.outage = "PostgreSQL: \(message)"
            let first = lock.withLock {
                defer { lastProblem = "PostgreSQL: \(message)" }
                return lastProblem == nil
            }
            if first {
                logger.error("PostgreSQL does not answer: requests that need it get 503 until it does", metadata: ["reason": .string(message)])
            }
            throw error
        }
    }

    private var looking = false
    private var lookAgain = false

    /// A look, one at a time: a look asked for while one runs makes that one look once more when it ends,
    /// so a change never waits for a look that began before it, and two looks never race to store what they read.
    public func look() async {
        let first = lock.withLock {
            if looking { lookAgain = true }
            defer { looking = true }
            return !looking
        }
        guard first else { return }
        repeat {
            try? await refresh()
        } while lock.withLock {
            defer { lookAgain = false }
            looking = lookAgain
            return lookAgain
        }
    }

    /// Runs until cancelled: a look every `interval`, and one at once when PostgreSQL notifies a change to
    /// the key ring or a registry (`LISTEN`, schema step 4); the clean-up every `sweepEvery` looks.
    public func run(interval: Duration = .seconds(1), sweepEvery: Int = 60) async throws {
        let listener = Task { [self] in
            await database.listenForChanges(onListening: { await self.look() }, onChange: { _ in await self.look() })
        }
        defer { listener.cancel() }
        var ticks = 0
        while !Task.isCancelled {
            try await Task.sleep(for: interval)
            await look()
            ticks += 1
            if ticks % sweepEvery == 0, problem == nil {
                do { try await sweep() } catch {
                    logger.warning("clean-up of expired rows failed; tried again next minute", metadata: ["reason": .string("\(error)")])
                }
            }
        }
    }

    /// Deletes expired rows; returns how many of each.
    @discardableResult
    public func sweep() async throws -> [String: Int] {
        let now = clock.now().timeIntervalSince1970
        var removed: [String: Int] = [:]
        removed["authorization_codes"] = try await database.inBatches(
            """
            DELETE FROM authorization_codes WHERE code_digest IN (
                SELECT code_digest FROM authorization_codes WHERE expires_at <= \(now) LIMIT 1000)
            RETURNING 1
            """)
        removed["pending_authorizations"] = try await database.inBatches(
            """
            DELETE FROM pending_authorizations WHERE handle IN (
                SELECT handle FROM pending_authorizations WHERE created <= \(now - policy.pendingLifetime) LIMIT 1000)
            RETURNING 1
            """)
        removed["browser_sessions"] =
            try await database.inBatches(
                """
                DELETE FROM browser_sessions WHERE id IN (
                    SELECT id FROM browser_sessions WHERE last_seen <= \(now - policy.idleLifetime) LIMIT 1000)
                RETURNING 1
                """)
            + database.inBatches(
                """
                DELETE FROM browser_sessions WHERE id IN (
                    SELECT id FROM browser_sessions WHERE created <= \(now - policy.absoluteLifetime) LIMIT 1000)
                RETURNING 1
                """)
        // Past `maximumSessions`, anonymous sessions go first, least recently seen first, down to three quarters
        // (a flood of new visitors displaces its own kind before it can sign anybody out).
        let (limit, target) = (policy.maximumSessions, policy.maximumSessions * 3 / 4)
        removed["browser_sessions", default: 0] += try await database.withConnection { connection in
            try await connection.query(
                """
                DELETE FROM browser_sessions WHERE id IN (
                    SELECT id FROM browser_sessions ORDER BY (username IS NOT NULL), last_seen
                    LIMIT (SELECT CASE WHEN count(*) > \(limit) THEN count(*) - \(target) ELSE 0 END FROM browser_sessions))
                RETURNING 1
                """, logger: connection.logger
            ).collect().count
        }
        removed["failure_counts"] = try await failures.forgetQuiet()
        removed["refresh_families"] = try await refreshTokens.forgetExpired()
        return removed
    }
}
