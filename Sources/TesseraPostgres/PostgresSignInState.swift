public import Foundation
import PostgresNIO
public import TesseraIssuer
import TesseraJOSE

extension PostgresDatabase {
    /// `withConnection` for the stores requests use: the database's failures become `temporarily_unavailable`
    /// (503 at the token endpoint, an error redirect or page at `/authorize`), its message kept for the log only.
    func serving<T: Sendable>(transaction: Bool = false, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        if let outage { throw OAuthError(.temporarilyUnavailable, "the database is unavailable", log: outage) }
        do {
            return transaction ? try await self.transaction(body) : try await withConnection(body)
        } catch let error as DatabaseError {
            throw OAuthError(.temporarilyUnavailable, "the database is unavailable", log: error.message)
        }
    }
}

/// Seconds since 1970 as the stores keep times (double precision columns).
func epoch(_ date: Date) -> Double { date.timeIntervalSince1970 }

/// Remembered consent in PostgreSQL: a row per user and client.
public struct PostgresConsents: ConsentRecords {
    let database: PostgresDatabase

    public init(database: PostgresDatabase) { self.database = database }

    public func consents() async throws -> [Consent] {
        try await database.serving { connection in
            var found: [Consent] = []
            let rows = try await connection.query(
                "SELECT username, client_id, scopes, granted FROM consents ORDER BY username, client_id", logger: connection.logger)
            for try await (username, clientID, scopes, granted) in rows.decode((String, String, String, Double).self) {
                found.append(
                    Consent(username: username, clientID: clientID, scopes: Self.scopes(scopes), granted: Date(timeIntervalSince1970: granted)))
            }
            return found
        }
    }

    public func covers(username: String, clientID: String, scope: [String]) async throws -> Bool {
        let granted = try await database.serving { connection in
            let rows = try await connection.query(
                "SELECT scopes FROM consents WHERE username = \(username) AND client_id = \(clientID)", logger: connection.logger)
            for try await scopes in rows.decode(String.self) { return Optional(scopes) }
            return nil
        }
        guard let granted else { return false }
        return Set(scope).isSubset(of: Self.scopes(granted))
    }

    public func remember(username: String, clientID: String, scope: [String], now: Date) async throws {
        let scopes = Set(scope).sorted().joined(separator: " ")
        try await database.serving { connection in
            // One statement: the upsert merges with the row as it stands when it takes the row's lock, so two
            // tabs' "remember" at two instances never lose each other's scopes. Scope tokens are ASCII: "C"
            // order is Swift's.
            try await connection.run(
                """
                INSERT INTO consents AS c (username, client_id, scopes, granted) VALUES (\(username), \(clientID), \(scopes), \(epoch(now)))
                ON CONFLICT (username, client_id) DO UPDATE SET granted = excluded.granted, scopes = (
                    SELECT string_agg(token, ' ' ORDER BY token COLLATE "C") FROM (
                        SELECT DISTINCT unnest(string_to_array(c.scopes || ' ' || excluded.scopes, ' ')) AS token) merged
                    WHERE token <> '')
                """)
        }
    }

    @discardableResult
    public func forget(username: String?, clientID: String?) async throws -> Int {
        guard username != nil || clientID != nil else { return 0 }
        return try await database.serving { connection in
            let query: PostgresQuery =
                switch (username, clientID) {
                case (let username?, let clientID?): "DELETE FROM consents WHERE username = \(username) AND client_id = \(clientID) RETURNING 1"
                case (let username?, nil): "DELETE FROM consents WHERE username = \(username) RETURNING 1"
                case (nil, let clientID?): "DELETE FROM consents WHERE client_id = \(clientID) RETURNING 1"
                case (nil, nil): "SELECT 1 WHERE false"
                }
            return try await connection.query(query, logger: connection.logger).collect().count
        }
    }

    static func scopes(_ text: String) -> [String] { text.split(separator: " ").map(String.init) }
}

/// Authorization codes in PostgreSQL, by SHA-256: issued by one instance, redeemed at any, exactly once.
public struct PostgresAuthorizationCodes: AuthorizationCodeRecords {
    let database: PostgresDatabase
    let clock: WallClock

    public init(database: PostgresDatabase, clock: WallClock = .system) {
        self.database = database
        self.clock = clock
    }

    public func issue(_ record: AuthorizationCodeGrantRecord) async throws -> String {
        let code = try AuthorizationCodeStore.newCode()
        let digest = ByteBuffer(bytes: Digest.sha256(Array(code.utf8)))
        let grant = ByteBuffer(bytes: Digest.sha256(Array((record.clientID + "\u{0}" + record.subject).utf8)))
        let serialized = try record.serialized()
        let now = epoch(clock.now())
        let keep = AuthorizationCodeStore.openCodesPerGrant - 1
        try await database.serving { connection in
            // At most `openCodesPerGrant` unused codes per user and client: the oldest make way.
            try await connection.run(
                """
                WITH evicted AS (
                    DELETE FROM authorization_codes WHERE code_digest IN (
                        SELECT code_digest FROM authorization_codes WHERE grant_digest = \(grant) AND NOT used
                        ORDER BY serial DESC OFFSET \(keep)))
                INSERT INTO authorization_codes (code_digest, grant_digest, client_id, record, expires_at)
                VALUES (\(digest), \(grant), \(record.clientID), \(serialized), \(now + AuthorizationCodeStore.lifetime))
                """)
        }
        return code
    }

    public func redeem(_ code: String, clientID: String) async throws -> AuthorizationCodeRedemption {
        let digest = ByteBuffer(bytes: Digest.sha256(Array(code.utf8)))
        let now = epoch(clock.now())
        return try await database.serving(transaction: true) { connection in
            // The row lock makes the check and the spending one step: of concurrent redemptions at any
            // instances, exactly one sees it unused.
            let rows = try await connection.query(
                """
                SELECT client_id, record, used, family_id FROM authorization_codes
                WHERE code_digest = \(digest) AND expires_at > \(now) FOR UPDATE
                """, logger: connection.logger)
            var found: (String, String, Bool, String?)?
            for try await row in rows.decode((String, String, Bool, String?).self) { found = row }
            guard let (owner, record, used, familyID) = found else { return .failed("unknown or expired authorization code") }
            guard owner.sameBytes(as: clientID) else { return .failed("authorization code issued to another client") }
            if used {
                if familyID == nil {
                    try await connection.run("UPDATE authorization_codes SET revoke_when_attached = true WHERE code_digest = \(digest)")
                }
                return .replayed(familyID: familyID)
            }
            try await connection.run("UPDATE authorization_codes SET used = true WHERE code_digest = \(digest)")
            return .fresh(try AuthorizationCodeGrantRecord(serialized: record))
        }
    }

    public func attach(familyID: String, to code: String) async throws -> Bool {
        let digest = ByteBuffer(bytes: Digest.sha256(Array(code.utf8)))
        return try await database.serving { connection in
            let rows = try await connection.query(
                "UPDATE authorization_codes SET family_id = \(familyID) WHERE code_digest = \(digest) RETURNING revoke_when_attached",
                logger: connection.logger)
            for try await revoke in rows.decode(Bool.self) { return revoke }
            return false
        }
    }
}
