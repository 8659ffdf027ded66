import NIOCore
import PostgresNIO
import TesseraIssuer

/// The columns of `refresh_families` a `RefreshFamilyRow` is read from, in order.
enum FamilyColumns {
    static let list = """
        family_key, current_digest, generation, client_id, subject, scope, auth_time, issued_at, created_at, \
        absolute_expiry, idle_lifetime, retry_window, retry_previous, retry_seed, retry_rotated_at, context, revoked
        """

    typealias Row = (
        ByteBuffer, ByteBuffer, Int64, String, String, String, Int64, Int64, Int64, Int64, Int32, Int32, ByteBuffer?, ByteBuffer?,
        Int64?, String, Bool
    )

    /// A row's values in the order of `list` ($1 … $17).
    static func bindings(_ row: RefreshFamilyRow) -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(ByteBuffer(bytes: row.key))
        bindings.append(ByteBuffer(bytes: row.currentDigest))
        bindings.append(row.generation)
        bindings.append(row.clientID)
        bindings.append(row.subject)
        bindings.append(row.scope)
        bindings.append(row.authTime)
        bindings.append(row.issuedAt)
        bindings.append(row.createdAt)
        bindings.append(row.absoluteExpiry)
        bindings.append(row.idleLifetime)
        bindings.append(row.retryWindow)
        bindings.append(row.retryPrevious.map { ByteBuffer(bytes: $0) })
        bindings.append(row.retrySeed.map { ByteBuffer(bytes: $0) })
        bindings.append(row.retryRotatedAt)
        bindings.append(row.context)
        bindings.append(row.revoked)
        return bindings
    }

    static func decode(_ row: Row) -> RefreshFamilyRow {
        RefreshFamilyRow(
            key: Array(row.0.readableBytesView), currentDigest: Array(row.1.readableBytesView), generation: row.2, clientID: row.3,
            subject: row.4, scope: row.5, authTime: row.6, issuedAt: row.7, createdAt: row.8, absoluteExpiry: row.9,
            idleLifetime: row.10, retryWindow: row.11, retryPrevious: row.12.map { Array($0.readableBytesView) },
            retrySeed: row.13.map { Array($0.readableBytesView) }, retryRotatedAt: row.14, context: row.15, revoked: row.16)
    }
}

/// A statement that reads one family's row by its key: prepared once per connection (postgres-nio
/// prepares on first use).
protocol FamilyByKey: PostgresPreparedStatement where Row == FamilyColumns.Row {
    var key: [UInt8] { get }
}

extension FamilyByKey {
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(ByteBuffer(bytes: key))
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

struct SelectFamily: FamilyByKey {
    static let sql = "SELECT \(FamilyColumns.list) FROM refresh_families WHERE family_key = $1"
    typealias Row = FamilyColumns.Row
    var key: [UInt8]
}

/// The row lock a rotation or revocation holds until its transaction ends.
struct LockFamily: FamilyByKey {
    static let sql = "SELECT \(FamilyColumns.list) FROM refresh_families WHERE family_key = $1 FOR UPDATE"
    typealias Row = FamilyColumns.Row
    var key: [UInt8]
}

/// A new family, and in the same statement the revocation of the user and client's oldest live families
/// beyond `RefreshFamilyRules.maximumFamiliesPerGrant` (the new row is not visible to the update, so it
/// keeps one fewer). Two issues racing may each keep one too many: the bound stays within one of the limit.
struct InsertFamily: PostgresPreparedStatement {
    static let sql = """
        WITH evicted AS (
            UPDATE refresh_families SET revoked = true, revoked_at = $8, revoked_reason = $18,
                retry_previous = NULL, retry_seed = NULL, retry_rotated_at = NULL
            WHERE family_key IN (
                SELECT family_key FROM refresh_families
                WHERE client_id = $4 AND subject = $5 AND NOT revoked AND expires_at > $8
                ORDER BY serial DESC OFFSET $19)
            RETURNING 1)
        \(ImportFamily.sql)
        """
    typealias Row = ()
    var row: RefreshFamilyRow

    func makeBindings() throws -> PostgresBindings {
        var bindings = FamilyColumns.bindings(row)
        bindings.append(RefreshFamilyRules.reasonLimit)
        bindings.append(Int64(RefreshFamilyRules.maximumFamiliesPerGrant - 1))
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {}
}

/// A family written whole, every column as the row holds it: a new one (`InsertFamily`), or one moved from
/// the file store with its retry state and revocation (`tessera db import`).
struct ImportFamily: PostgresPreparedStatement {
    static let sql = """
        INSERT INTO refresh_families (\(FamilyColumns.list))
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
        """
    typealias Row = ()
    var row: RefreshFamilyRow

    func makeBindings() throws -> PostgresBindings { FamilyColumns.bindings(row) }

    func decodeRow(_ row: PostgresRow) throws -> Row {}
}

/// What a rotation changes in its (locked) row.
struct UpdateRotation: PostgresPreparedStatement {
    static let sql = """
        UPDATE refresh_families SET current_digest = $2, generation = $3, issued_at = $4,
            retry_previous = $5, retry_seed = $6, retry_rotated_at = $7
        WHERE family_key = $1
        """
    typealias Row = ()
    var row: RefreshFamilyRow

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(ByteBuffer(bytes: row.key))
        bindings.append(ByteBuffer(bytes: row.currentDigest))
        bindings.append(row.generation)
        bindings.append(row.issuedAt)
        bindings.append(row.retryPrevious.map { ByteBuffer(bytes: $0) })
        bindings.append(row.retrySeed.map { ByteBuffer(bytes: $0) })
        bindings.append(row.retryRotatedAt)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {}
}

/// The optimistic rotation's write: the rotation `RefreshFamilyRules` decided on an unlocked read, applied
/// only if the row is still what was read (same generation and digest, not revoked). One autocommit
/// statement; a concurrent change makes it match nothing, and the caller decides again under the row lock.
struct SwapRotation: PostgresPreparedStatement {
    static let sql = UpdateRotation.sql + " AND generation = $8 AND current_digest = $9 AND NOT revoked RETURNING 1"
    typealias Row = Int
    var row: RefreshFamilyRow
    var expectedGeneration: Int64
    var expectedDigest: [UInt8]

    func makeBindings() throws -> PostgresBindings {
        var bindings = try UpdateRotation(row: row).makeBindings()
        bindings.append(expectedGeneration)
        bindings.append(ByteBuffer(bytes: expectedDigest))
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Int.self) }
}

/// Whole rotations in one autocommit statement (`PredictedRotation`), for every caller of a batch: the
/// rules' conditions for rotating without a scope parameter, each predicted successor written, the rows
/// returned as left. A presentation whose conditions fail changes nothing (the store then decides it the
/// ordinary way). Two presentations of one token in a batch: the row is updated once, by one of them, and
/// only that one finds its successor in the returned row.
struct PredictedSwaps: PostgresPreparedStatement {
    static let sql = """
        UPDATE refresh_families SET current_digest = v_successor, generation = generation + 1, issued_at = GREATEST(v_now, issued_at),
            retry_previous = CASE WHEN retry_window > 0 THEN v_presented END, retry_seed = CASE WHEN retry_window > 0 THEN v_seed END,
            retry_rotated_at = CASE WHEN retry_window > 0 THEN v_now END
        FROM unnest($1::bytea[], $2::bytea[], $3::bigint[], $4::bytea[], $5::bytea[], $6::text[], $7::bigint[])
            AS v(v_key, v_successor, v_now, v_presented, v_seed, v_client, v_generation)
        WHERE family_key = v_key AND client_id = v_client AND NOT revoked AND expires_at > v_now
            AND generation = v_generation AND generation < 4294967295 AND current_digest = v_presented
        RETURNING \(FamilyColumns.list)
        """
    typealias Row = FamilyColumns.Row
    var batch: [(predicted: PredictedRotation, clientID: String)]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(batch.map { ByteBuffer(bytes: $0.predicted.familyKey) })
        bindings.append(batch.map { ByteBuffer(bytes: $0.predicted.successorDigest) })
        bindings.append(batch.map(\.predicted.now))
        bindings.append(batch.map { ByteBuffer(bytes: $0.predicted.presentedDigest) })
        bindings.append(batch.map { ByteBuffer(bytes: $0.predicted.seed) })
        bindings.append(batch.map(\.clientID))
        bindings.append(batch.map(\.predicted.presentedGeneration))
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}
