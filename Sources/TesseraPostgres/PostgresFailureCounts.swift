import Foundation
import PostgresNIO
public import TesseraIssuer

/// Failed-attempt counts in PostgreSQL, so guesses spread over instances count as one: the same keys,
/// free failures and doubling delays as `FailureThrottle`, with the database's clock, which every instance
/// shares. A check is one read by primary key; only a failure writes (one upsert per key, decided in the
/// statement, so concurrent failures at several instances all count), and a success writes only when its
/// check found a count to clear.
public struct PostgresFailureCounts: FailureCounting {
    public let policy: FailureThrottle.Policy
    let database: PostgresDatabase

    public init(database: PostgresDatabase, policy: FailureThrottle.Policy = FailureThrottle.Policy()) {
        self.database = database
        self.policy = policy
    }

    static let now = "extract(epoch FROM clock_timestamp())"

    public func check(_ keys: [FailureThrottle.Key]) async throws -> FailureCheck {
        let names = keys.map(\.storageKey)
        let found = try await database.serving { connection in
            var rows: [(String, Double)] = []
            for try await row in try await connection.execute(CountsOf(keys: names), logger: connection.logger) { rows.append(row) }
            return rows
        }
        let wait = found.map(\.1).max() ?? 0
        let counted = Set(found.map(\.0))
        return FailureCheck(
            retryAfter: wait > 0 ? Int(wait.rounded(.up)) : nil, clearable: keys.filter { $0.clearedBySuccess && counted.contains($0.storageKey) })
    }

    public func recordFailure(_ keys: [FailureThrottle.Key]) async throws {
        let policy = policy
        try await database.serving { connection in
            for key in keys {
                // Quiet for a whole window after its last failure and its last block: the count starts again.
                // Past the free failures, blocked for a delay that doubles with each further failure.
                let free = policy.freeFailures(key.kind)
                let count = "(CASE WHEN \(Self.now) - GREATEST(f.last_failure, f.blocked_until) > \(policy.window) THEN 0 ELSE f.failures END + 1)"
                let delay = { (failures: String) in
                    "LEAST(\(policy.maximumDelay), \(policy.baseDelay) * power(2, LEAST(\(failures) - \(free) - 1, 30)))"
                }
                let sql = """
                    INSERT INTO failure_counts AS f (key, failures, last_failure, blocked_until)
                    VALUES ($1, 1, \(Self.now), CASE WHEN 1 > \(free) THEN \(Self.now) + \(delay("1")) ELSE 0 END)
                    ON CONFLICT (key) DO UPDATE SET
                        failures = \(count),
                        last_failure = \(Self.now),
                        blocked_until = CASE WHEN \(count) > \(free) THEN \(Self.now) + \(delay(count)) ELSE f.blocked_until END
                    """
                var binds = PostgresBindings()
                binds.append(key.storageKey)
                try await connection.run(PostgresQuery(unsafeSQL: sql, binds: binds))
            }
        }
    }

    public func clear(after check: FailureCheck) async throws {
        guard !check.clearable.isEmpty else { return }
        let names = check.clearable.map(\.storageKey)
        try await database.serving { connection in
            try await connection.run(PostgresQuery(unsafeSQL: "DELETE FROM failure_counts WHERE key = ANY($1)", binds: Self.binds(names)))
        }
    }

    /// Forgets counts that would start again anyway (no failure and no block for a window), in batches.
    public func forgetQuiet() async throws -> Int {
        let sql = """
            DELETE FROM failure_counts WHERE key IN (
                SELECT key FROM failure_counts WHERE GREATEST(last_failure, blocked_until) < \(Self.now) - \(policy.window) LIMIT 1000)
            RETURNING 1
            """
        return try await database.inBatches(PostgresQuery(unsafeSQL: sql))
    }

    private static func binds(_ names: [String]) -> PostgresBindings {
        var binds = PostgresBindings()
        binds.append(names)
        return binds
    }
}

/// The counts of a request's keys, and how long each is still blocked: on every client authentication and
/// password check, so prepared once per connection.
struct CountsOf: PostgresPreparedStatement {
    static let sql = "SELECT key, blocked_until - extract(epoch FROM clock_timestamp()) FROM failure_counts WHERE key = ANY($1)"
    typealias Row = (String, Double)
    var keys: [String]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(keys)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}
