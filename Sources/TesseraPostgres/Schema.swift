import PostgresNIO

/// Tessera's tables, as numbered steps. `tessera db migrate` applies the missing ones in one transaction
/// under an advisory lock, so two instances migrating at once apply each step exactly once; `tessera serve`
/// refuses a database whose version is not `Schema.current`.
///
/// A step is never edited once released: a change is a new step.
public enum Schema {
    struct Step {
        let version: Int
        let summary: String
        let statements: [String]
    }

    static let steps: [Step] = [
        Step(
            version: 1, summary: "schema versions; refresh-token families",
            statements: [
                """
                CREATE TABLE tessera_schema (
                    version integer PRIMARY KEY,
                    summary text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """,
                // One row per family, never per token: digests only (RFC 9700 §4.14); `expires_at` is what
                // the clean-up scans by, `serial` the order of issue. Revoked rows stay until they expire, so a late replay is
                // still reuse.
                """
                CREATE TABLE refresh_families (
                    family_key bytea PRIMARY KEY CHECK (length(family_key) = 16),
                    serial bigint GENERATED ALWAYS AS IDENTITY,
                    current_digest bytea NOT NULL CHECK (length(current_digest) = 32),
                    generation bigint NOT NULL CHECK (generation BETWEEN 1 AND 4294967295),
                    client_id text NOT NULL,
                    subject text NOT NULL,
                    scope text NOT NULL,
                    auth_time bigint NOT NULL,
                    issued_at bigint NOT NULL,
                    created_at bigint NOT NULL,
                    absolute_expiry bigint NOT NULL,
                    idle_lifetime integer NOT NULL,
                    retry_window integer NOT NULL,
                    retry_previous bytea,
                    retry_seed bytea,
                    retry_rotated_at bigint,
                    context text NOT NULL DEFAULT '',
                    revoked boolean NOT NULL DEFAULT false,
                    revoked_at bigint,
                    revoked_reason smallint,
                    expires_at bigint GENERATED ALWAYS AS (LEAST(issued_at + idle_lifetime, absolute_expiry)) STORED
                )
                """,
                "CREATE INDEX refresh_families_grant ON refresh_families (client_id, subject, serial) WHERE NOT revoked",
                "CREATE INDEX refresh_families_subject ON refresh_families (subject) WHERE NOT revoked",
                "CREATE INDEX refresh_families_expiry ON refresh_families (expires_at)",
                "CREATE INDEX refresh_families_retry ON refresh_families (retry_rotated_at) WHERE retry_rotated_at IS NOT NULL",
            ]),
        Step(
            version: 2, summary: "clients, users, consents, authorization codes, browser sessions, failure counts",
            statements: [
                // Clients and users as the JSON documents clients.json and users.json hold for each (their
                // fields change with features; the keys they are found by are columns). Identifiers are
                // COLLATE "C": compared and ordered byte for byte. `position` keeps the order of registration.
                """
                CREATE TABLE clients (
                    client_id text COLLATE "C" PRIMARY KEY,
                    position bigint GENERATED ALWAYS AS IDENTITY,
                    document text NOT NULL
                )
                """,
                """
                CREATE TABLE users (
                    username text COLLATE "C" PRIMARY KEY,
                    position bigint GENERATED ALWAYS AS IDENTITY,
                    subject text COLLATE "C" NOT NULL UNIQUE,
                    document text NOT NULL
                )
                """,
                // Bumped in the transaction of every change to clients or users: what instances poll to reload.
                "CREATE TABLE registry_changes (name text PRIMARY KEY, generation bigint NOT NULL)",
                "INSERT INTO registry_changes (name, generation) VALUES ('clients', 0), ('users', 0)",
                """
                CREATE TABLE consents (
                    username text COLLATE "C" NOT NULL,
                    client_id text COLLATE "C" NOT NULL,
                    scopes text NOT NULL,
                    granted double precision NOT NULL,
                    PRIMARY KEY (username, client_id)
                )
                """,
                "CREATE INDEX consents_client ON consents (client_id)",
                // Codes by SHA-256 only; a used code stays until it expires, so a replay is recognised.
                """
                CREATE TABLE authorization_codes (
                    code_digest bytea PRIMARY KEY CHECK (length(code_digest) = 32),
                    serial bigint GENERATED ALWAYS AS IDENTITY,
                    grant_digest bytea NOT NULL,
                    client_id text COLLATE "C" NOT NULL,
                    record text NOT NULL,
                    expires_at double precision NOT NULL,
                    used boolean NOT NULL DEFAULT false,
                    family_id text,
                    revoke_when_attached boolean NOT NULL DEFAULT false
                )
                """,
                "CREATE INDEX authorization_codes_open ON authorization_codes (grant_digest, serial) WHERE NOT used",
                "CREATE INDEX authorization_codes_expiry ON authorization_codes (expires_at)",
                // Sessions by the SHA-256 of their cookie; a sign-in gives the row a new cookie.
                """
                CREATE TABLE browser_sessions (
                    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    cookie_digest bytea NOT NULL UNIQUE CHECK (length(cookie_digest) = 32),
                    csrf_token text NOT NULL,
                    username text COLLATE "C",
                    subject text COLLATE "C",
                    auth_time double precision,
                    session_id text,
                    created double precision NOT NULL,
                    last_seen double precision NOT NULL
                )
                """,
                "CREATE INDEX browser_sessions_last_seen ON browser_sessions (last_seen)",
                "CREATE INDEX browser_sessions_created ON browser_sessions (created)",
                // An open authorization request keeps its parameters, validated again whenever it is resumed.
                """
                CREATE TABLE pending_authorizations (
                    handle text COLLATE "C" PRIMARY KEY,
                    session bigint NOT NULL REFERENCES browser_sessions (id) ON DELETE CASCADE,
                    parameters text NOT NULL,
                    created double precision NOT NULL,
                    signed_in_here boolean NOT NULL DEFAULT false,
                    hinted_subject text
                )
                """,
                "CREATE INDEX pending_authorizations_session ON pending_authorizations (session, created)",
                "CREATE INDEX pending_authorizations_created ON pending_authorizations (created)",
                // Failure counts by the throttle's key digest; times are the database's clock, which every
                // instance shares.
                """
                CREATE TABLE failure_counts (
                    key text COLLATE "C" PRIMARY KEY,
                    failures integer NOT NULL,
                    last_failure double precision NOT NULL,
                    blocked_until double precision NOT NULL DEFAULT 0
                )
                """,
                "CREATE INDEX failure_counts_quiet ON failure_counts ((GREATEST(last_failure, blocked_until)))",
            ]),
        Step(
            version: 3, summary: "the signing key ring, private keys sealed under a key-encryption key",
            statements: [
                // The manifest (`keys/keyring.json`'s content: policy, states, times) in one row, changed under
                // its row lock; every change bumps `generation`, which instances watch.
                """
                CREATE TABLE key_ring (
                    id smallint PRIMARY KEY CHECK (id = 1),
                    manifest text NOT NULL,
                    generation bigint NOT NULL
                )
                """,
                // Private keys only sealed (AES-256-GCM, the kid and algorithm as associated data) under the key
                // named by `kek_id`, which never enters the database.
                """
                CREATE TABLE signing_keys (
                    kid text COLLATE "C" PRIMARY KEY,
                    alg text NOT NULL,
                    kek_id text NOT NULL,
                    sealed bytea NOT NULL
                )
                """,
            ]),
        Step(
            version: 4, summary: "changes to the key ring and the registries notified to listening instances",
            statements: [
                // Instances LISTEN on one channel per database; the payload names the schema, so deployments
                // (or tests) sharing a database each follow only their own. Sent at commit, once per transaction.
                """
                CREATE FUNCTION tessera_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    PERFORM pg_notify('tessera_changes', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);
                    RETURN NULL;
                END
                $$
                """,
                "CREATE TRIGGER key_ring_changed AFTER INSERT OR UPDATE ON key_ring FOR EACH STATEMENT EXECUTE FUNCTION tessera_notify_change()",
                """
                CREATE TRIGGER registry_changed AFTER INSERT OR UPDATE ON registry_changes
                FOR EACH STATEMENT EXECUTE FUNCTION tessera_notify_change()
                """,
            ]),
    ]

    /// The version this build reads and writes.
    public static var current: Int { steps.last!.version }

    /// Any constant: the advisory lock every `migrate` takes for its transaction.
    static let migrationLock: Int64 = 0x7465_7373_6572_61  // "tessera"

    /// The database's schema version: 0 when it has no Tessera tables.
    public static func version(of database: PostgresDatabase) async throws -> Int {
        try await database.withConnection { connection in try await version(on: connection) }
    }

    static func version(on connection: PostgresConnection) async throws -> Int {
        let exists = try await connection.query("SELECT to_regclass('tessera_schema') IS NOT NULL", logger: connection.logger).collect()
        guard try exists.first?.decode(Bool.self) == true else { return 0 }
        let rows = try await connection.query("SELECT coalesce(max(version), 0) FROM tessera_schema", logger: connection.logger).collect()
        return try rows.first?.decode(Int.self) ?? 0
    }

    /// Brings the schema to `current`; returns the versions it applied (empty when it was already there).
    /// Refuses a database newer than this build.
    @discardableResult
    public static func migrate(_ database: PostgresDatabase) async throws -> [Int] {
        // Longer bounds than a request's: another instance may be migrating, and a step may build an index.
        try await database.transaction(timeout: .seconds(600)) { connection in
            try await connection.run("SET LOCAL lock_timeout = '300s'")
            try await connection.run("SET LOCAL statement_timeout = '300s'")
            try await connection.run("SELECT pg_advisory_xact_lock(\(migrationLock))")
            if let schema = database.options.schema ?? database.url.schema {
                // Created only when missing (creating needs a privilege on the database that using does not).
                let exists = try await connection.query("SELECT 1 FROM pg_namespace WHERE nspname = \(schema)", logger: connection.logger).collect()
                // The name is a plain identifier (`DatabaseURL` checks it; tests make their own).
                if exists.isEmpty { try await connection.run(PostgresQuery(unsafeSQL: "CREATE SCHEMA \"\(schema)\"")) }
            }
            let found = try await version(on: connection)
            guard found <= current else { throw newer(found) }
            var applied: [Int] = []
            for step in steps where step.version > found {
                for statement in step.statements {
                    try await connection.run(PostgresQuery(unsafeSQL: statement))
                }
                try await connection.run("INSERT INTO tessera_schema (version, summary) VALUES (\(step.version), \(step.summary))")
                applied.append(step.version)
            }
            return applied
        }
    }

    /// Throws unless the database is at exactly `current`, naming the command that fixes it.
    public static func check(_ database: PostgresDatabase) async throws {
        let found = try await version(of: database)
        if found == 0 {
            throw DatabaseError(.schemaMissing, "the database has no Tessera schema: run `tessera db migrate --database URL`")
        }
        if found < current {
            throw DatabaseError(
                .schemaOutdated, "the schema is at version \(found), this tessera needs \(current): run `tessera db migrate --database URL`")
        }
        if found > current { throw newer(found) }
    }

    private static func newer(_ found: Int) -> DatabaseError {
        DatabaseError(
            .schemaNewer,
            "the schema is at version \(found), newer than this tessera knows (\(current)): run the tessera that migrated it, or a later one")
    }
}

/// What `tessera db status` prints: the schema version and the rows of each Tessera table.
public struct DatabaseStatus: Sendable {
    public var version: Int
    public var rows: [(table: String, count: Int)]

    /// The tables of the current schema, in the order status lists them.
    public static let tables = [
        "refresh_families", "clients", "users", "consents", "authorization_codes", "browser_sessions", "pending_authorizations", "failure_counts",
        "signing_keys",
    ]

    /// What to do when the schema is not the one this build runs on; nil when it is.
    public var advice: String? {
        if version == 0 { return "no Tessera schema: run tessera db migrate" }
        if version < Schema.current { return "older than this tessera: run tessera db migrate" }
        if version > Schema.current { return "newer than this tessera: run a later tessera" }
        return nil
    }

    public static func read(_ database: PostgresDatabase) async throws -> DatabaseStatus {
        let version = try await Schema.version(of: database)
        var rows: [(String, Int)] = []
        for table in tables {
            let present = try await database.strings("SELECT (to_regclass('\(table)') IS NOT NULL)::text")
            guard present.first == "true" else { continue }
            let count = try await database.strings("SELECT count(*)::text FROM \(table)")
            rows.append((table, Int(count.first ?? "") ?? 0))
        }
        return DatabaseStatus(version: version, rows: rows)
    }
}
