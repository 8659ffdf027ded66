import Foundation
import NIOCore
import PostgresNIO
public import TesseraIssuer
public import TesseraJOSE

/// Refresh-token families in PostgreSQL, shared by every `tessera serve` on the database.
///
/// `RefreshFamilyRules` — the rules the file store runs — make every decision; the SQL only reads and
/// writes rows, under READ COMMITTED. A token presented without a scope is rotated in one conditional
/// statement, grouped with the others presented meanwhile (`RotationBatches`); when that matches nothing, or a
/// scope is asked for, the store reads the family's row and writes the successor with a compare-and-swap on
/// what it read. A presentation that lost a race to another instance, and every reuse,
/// is decided again in one transaction under the row's lock (`SELECT … FOR UPDATE`): of concurrent
/// presentations of one token exactly one rotates, the others are reuse (or, inside the client's retry
/// window, get the same successor). Nothing here can fail with a serialization error, and a transaction
/// that fails part-way is rolled back: a client that got an error may retry.
public final class PostgresRefreshTokenStore: RefreshTokenStore {
    let database: PostgresDatabase
    let clock: WallClock
    private let batches: RotationBatches

    public init(database: PostgresDatabase, clock: WallClock = .system) {
        self.database = database
        self.clock = clock
        batches = RotationBatches(database: database)
    }

    public func issue(_ family: NewRefreshTokenFamily) async throws -> IssuedRefreshToken {
        let (row, issued) = try RefreshFamilyRules.issue(family, now: clock.now())
        try await run {
            try await self.database.withConnection { connection in
                _ = try await connection.execute(InsertFamily(row: row), logger: connection.logger)
            }
        }
        return issued
    }

    public func rotate(_ token: RefreshToken, clientID: String, scope: [String]?) async throws -> RefreshTokenRotation {
        let presented = try PresentedRefreshToken(token)
        if scope == nil {
            // The common case in one statement: the successor predicted, written only if this is the live token.
            let predicted = try RefreshFamilyRules.predict(presented, now: clock.now())
            if let rotation = try await run({ try await self.predictedRotation(predicted, clientID: clientID) }) { return rotation }
        }
        if let outcome = try await run({ try await self.optimisticRotation(presented, clientID: clientID, scope: scope) }) {
            return try outcome.get()
        }
        return try await lockedRotation(presented, clientID: clientID, scope: scope)
    }

    /// The predicted rotation, written with the others of its batch; nil when it matched nothing (not the
    /// live token, not this client's, or not live).
    private func predictedRotation(_ predicted: PredictedRotation, clientID: String) async throws -> RefreshTokenRotation? {
        guard let row = try await batches.rotate(predicted, clientID: clientID) else { return nil }
        guard let rotation = predicted.rotation(row: row) else {
            // The statement's conditions are the rules' own: a row it rotated always holds the successor.
            throw DatabaseError(.unavailable, "a one-statement rotation left a row the rules do not recognise")
        }
        return rotation
    }

    /// When the one-statement rotation does not apply, two statements without a transaction: read the row, let
    /// the rules decide, and write a rotation only if the row is unchanged (compare and swap on generation and digest). Nil when
    /// the row changed meanwhile or the decision is a revocation: those are decided again under the lock.
    private func optimisticRotation(
        _ presented: PresentedRefreshToken, clientID: String, scope: [String]?
    ) async throws -> Result<RefreshTokenRotation, RefreshTokenStoreError>? {
        let clock = clock
        return try await database.withConnection { connection -> Result<RefreshTokenRotation, RefreshTokenStoreError>? in
            let row = try await Self.first(SelectFamily(key: presented.familyKey), on: connection)
            switch try RefreshFamilyRules.rotate(presented, family: row, clientID: clientID, scope: scope, now: clock.now()) {
            case .rotate(let next, let rotation):
                guard let row else { return nil }
                let swap = SwapRotation(row: next, expectedGeneration: row.generation, expectedDigest: row.currentDigest)
                for try await _ in try await connection.execute(swap, logger: connection.logger) { return .success(rotation) }
                return nil
            case .retry(let rotation): return .success(rotation)
            case .fail(let error): return .failure(error)
            case .revokeForReuse: return nil
            }
        }
    }

    /// The rotation under the family's row lock, in one transaction: the answer for every presentation
    /// that lost a race, and for reuse, whose revocation must not be lost to one.
    private func lockedRotation(_ presented: PresentedRefreshToken, clientID: String, scope: [String]?) async throws -> RefreshTokenRotation {
        let clock = clock
        let outcome: Result<RefreshTokenRotation, RefreshTokenStoreError> = try await run {
            try await self.database.transaction { connection in
                let row = try await Self.first(LockFamily(key: presented.familyKey), on: connection)
                let now = clock.now()
                switch try RefreshFamilyRules.rotate(presented, family: row, clientID: clientID, scope: scope, now: now) {
                case .rotate(let next, let rotation):
                    _ = try await connection.execute(UpdateRotation(row: next), logger: connection.logger)
                    return .success(rotation)
                case .retry(let rotation):
                    return .success(rotation)
                case .revokeForReuse(let error):
                    try await Self.revoke(
                        "family_key", ByteBuffer(bytes: presented.familyKey), reason: RefreshFamilyRules.reasonReuse,
                        now: RefreshFamilyRules.seconds(now), on: connection)
                    return .failure(error)
                case .fail(let error):
                    return .failure(error)
                }
            }
        }
        return try outcome.get()
    }

    public func record(for token: RefreshToken) async throws -> RefreshTokenRecord? {
        guard let presented = try? PresentedRefreshToken(token) else { return nil }
        let row = try await run { try await self.row(presented.familyKey) }
        return RefreshFamilyRules.record(presented, family: row, now: clock.now())
    }

    public func isFamilyLive(_ familyID: String) async throws -> Bool {
        guard let key = RefreshFamilyRules.key(familyID: familyID) else { return false }
        guard let row = try await run({ try await self.row(key) }) else { return false }
        return !row.revoked && RefreshFamilyRules.seconds(clock.now()) < row.expiresAt
    }

    @discardableResult
    public func revokeFamily(of token: RefreshToken, clientID: String?) async throws -> Bool {
        guard let presented = try? PresentedRefreshToken(token) else { return false }
        let now = RefreshFamilyRules.seconds(clock.now())
        return try await run {
            try await self.database.transaction { connection in
                let row = try await Self.first(LockFamily(key: presented.familyKey), on: connection)
                guard try RefreshFamilyRules.revokes(presented, family: row, clientID: clientID) else { return false }
                let key = ByteBuffer(bytes: presented.familyKey)
                return try await Self.revoke("family_key", key, reason: RefreshFamilyRules.reasonRequested, now: now, on: connection) > 0
            }
        }
    }

    @discardableResult
    public func revokeFamily(withID familyID: String) async throws -> Bool {
        guard let key = RefreshFamilyRules.key(familyID: familyID) else { return false }
        return try await revokeWhere("family_key", ByteBuffer(bytes: key)) > 0
    }

    @discardableResult
    public func revokeFamilies(ofClient clientID: String) async throws -> Int {
        try await revokeWhere("client_id", clientID)
    }

    @discardableResult
    public func revokeFamilies(ofSubject subject: String) async throws -> Int {
        try await revokeWhere("subject", subject)
    }

    @discardableResult
    public func revokeAllFamilies() async throws -> Int {
        try await revokeWhere(nil, "")
    }

    /// Deletes expired families, and retry states past every window, in batches of 1,000 rows: no long
    /// lock, and each batch is found through an index.
    @discardableResult
    public func forgetExpired() async throws -> Int {
        let now = RefreshFamilyRules.seconds(clock.now())
        let removed = try await inBatches(
            """
            DELETE FROM refresh_families WHERE family_key IN (
                SELECT family_key FROM refresh_families WHERE expires_at <= \(now) LIMIT 1000)
            RETURNING 1
            """)
        let windowEnd = now - Int64(RefreshTokenPolicy.maximumRetryWindow)
        _ = try await inBatches(
            """
            UPDATE refresh_families SET retry_previous = NULL, retry_seed = NULL, retry_rotated_at = NULL
            WHERE family_key IN (SELECT family_key FROM refresh_families WHERE retry_rotated_at < \(windowEnd) LIMIT 1000)
            RETURNING 1
            """)
        return removed
    }

    public func statistics() async -> RefreshTokenStoreStatistics {
        let counts = try? await run {
            try await self.database.withConnection { connection in
                let rows = try await connection.query(
                    """
                    SELECT count(*) FILTER (WHERE NOT revoked), count(*) FILTER (WHERE revoked),
                           count(*) FILTER (WHERE retry_rotated_at IS NOT NULL)
                    FROM refresh_families
                    """, logger: connection.logger)
                for try await (live, revoked, retries) in rows.decode((Int, Int, Int).self) { return (live, revoked, retries) }
                return (0, 0, 0)
            }
        }
        guard let counts else { return RefreshTokenStoreStatistics(families: 0) }
        return RefreshTokenStoreStatistics(families: counts.0, revokedFamilies: counts.1, retryRecords: counts.2)
    }

    // MARK: Rows

    private func row(_ key: [UInt8]) async throws -> RefreshFamilyRow? {
        try await database.withConnection { connection in try await Self.first(SelectFamily(key: key), on: connection) }
    }

    /// The row a by-key statement finds (plain, or locked until the transaction ends), if any.
    private static func first(_ statement: some FamilyByKey, on connection: PostgresConnection) async throws -> RefreshFamilyRow? {
        var found: RefreshFamilyRow?
        for try await row in try await connection.execute(statement, logger: connection.logger) { found = FamilyColumns.decode(row) }
        return found
    }

    /// Revokes the live families whose `column` is `value` (every live family when `column` is nil) and
    /// drops their retry states; returns how many.
    @discardableResult
    private static func revoke(
        _ column: String?, _ value: some PostgresEncodable, reason: Int16, now: Int64, on connection: PostgresConnection
    ) async throws -> Int {
        var bindings = PostgresBindings()
        bindings.append(now)
        bindings.append(reason)
        var sql = """
            UPDATE refresh_families SET revoked = true, revoked_at = $1, revoked_reason = $2,
                retry_previous = NULL, retry_seed = NULL, retry_rotated_at = NULL
            WHERE NOT revoked
            """
        if let column {
            try bindings.append(value)
            sql += " AND \(column) = $3"
        }
        return try await connection.query(PostgresQuery(unsafeSQL: sql + " RETURNING 1", binds: bindings), logger: connection.logger)
            .collect().count
    }

    /// `revoke` on a connection of its own, at the store's time, for a request or an operator.
    private func revokeWhere(_ column: String?, _ value: some PostgresEncodable & Sendable) async throws -> Int {
        let now = RefreshFamilyRules.seconds(clock.now())
        return try await run {
            try await self.database.withConnection { connection in
                try await Self.revoke(column, value, reason: RefreshFamilyRules.reasonRequested, now: now, on: connection)
            }
        }
    }

    private func inBatches(_ query: PostgresQuery) async throws -> Int {
        try await run { try await database.inBatches(query) }
    }

    /// Runs a database operation; the database's failures become the store's `unavailable`, which the
    /// token endpoint answers with 503 `temporarily_unavailable`.
    private func run<T>(_ body: () async throws -> T) async throws -> T {
        if let outage = database.outage { throw RefreshTokenStoreError(.unavailable, outage) }
        do { return try await body() } catch let error as DatabaseError { throw RefreshTokenStoreError(.unavailable, error.message) }
    }
}
