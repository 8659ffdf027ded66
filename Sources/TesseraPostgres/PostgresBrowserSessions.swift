import Foundation
import PostgresNIO
public import TesseraIssuer
import TesseraJOSE

/// Browser sessions in PostgreSQL, so a sign-in at one instance is honoured by the others: a row per session
/// found by the SHA-256 of its cookie (the cookie carries only that random value), and a row per open
/// authorization request holding the request's parameters, validated again against the current client
/// registry whenever it is resumed.
///
/// `last_seen` is written at most once a minute per session: a page view is not a write each time, and
/// the idle lifetime (30 minutes by default) is kept to within that minute.
public struct PostgresBrowserSessions: BrowserSessionRecords {
    public let policy: SessionPolicy
    let database: PostgresDatabase
    let clock: WallClock
    let clients: @Sendable () -> ClientRegistry

    /// `clients`: the registry requests are validated against when they are resumed.
    public init(
        database: PostgresDatabase, policy: SessionPolicy = SessionPolicy(), clock: WallClock = .system,
        clients: @escaping @Sendable () -> ClientRegistry
    ) {
        self.database = database
        self.policy = policy
        self.clock = clock
        self.clients = clients
    }

    static let lastSeenGranularity = 60.0

    private static func digest(_ cookie: String) -> ByteBuffer { ByteBuffer(bytes: Digest.sha256(Array(cookie.utf8))) }

    public func session(_ cookie: String?) async throws -> BrowserSession? {
        guard let cookie, cookie.utf8.count <= 256 else { return nil }
        let key = Self.digest(cookie)
        let now = epoch(clock.now())
        let (policy, granularity) = (policy, Self.lastSeenGranularity)
        return try await database.serving { connection in
            let rows = try await connection.query(
                """
                SELECT csrf_token, username, subject, auth_time, session_id, created, last_seen
                FROM browser_sessions WHERE cookie_digest = \(key)
                """, logger: connection.logger)
            for try await (csrf, username, subject, authTime, sessionID, created, lastSeen) in rows.decode(
                (String, String?, String?, Double?, String?, Double, Double).self)
            {
                guard now - lastSeen < policy.idleLifetime, now - created < policy.absoluteLifetime else {
                    try await connection.run("DELETE FROM browser_sessions WHERE cookie_digest = \(key)")
                    return nil
                }
                if now - lastSeen >= granularity {
                    try await connection.run("UPDATE browser_sessions SET last_seen = \(now) WHERE cookie_digest = \(key)")
                }
                return BrowserSession(
                    cookie: cookie, csrfToken: csrf, username: username, subject: subject, authTime: authTime.map(Date.init(timeIntervalSince1970:)),
                    sessionID: sessionID)
            }
            return nil
        }
    }

    public func sessionOrNew(_ cookie: String?) async throws -> BrowserSession {
        if let existing = try await session(cookie) { return existing }
        let (cookie, csrf) = try BrowserSession.newSecrets()
        let now = epoch(clock.now())
        try await database.serving { connection in
            try await connection.run(
                """
                INSERT INTO browser_sessions (cookie_digest, csrf_token, created, last_seen)
                VALUES (\(Self.digest(cookie)), \(csrf), \(now), \(now))
                """)
        }
        return BrowserSession(cookie: cookie, csrfToken: csrf, username: nil, subject: nil, authTime: nil, sessionID: nil)
    }

    public func open(_ request: AuthorizationRequest, in session: BrowserSession, hintedSubject: String?) async throws -> PendingAuthorization {
        let pending = PendingAuthorization(
            handle: try BrowserSession.newHandle(), request: request, created: clock.now(), hintedSubject: hintedSubject)
        let parameters = String(decoding: try JSONEncoder().encode(request.parameters), as: UTF8.self)
        let keep = policy.maximumPendingPerSession - 1
        let (key, created) = (Self.digest(session.cookie), epoch(pending.created))
        try await database.serving { connection in
            // At most `maximumPendingPerSession` open requests per session (tabs): the oldest make way.
            try await connection.run(
                """
                WITH owner AS (SELECT id FROM browser_sessions WHERE cookie_digest = \(key)),
                evicted AS (
                    DELETE FROM pending_authorizations WHERE handle IN (
                        SELECT handle FROM pending_authorizations WHERE session = (SELECT id FROM owner)
                        ORDER BY created DESC OFFSET \(keep)))
                INSERT INTO pending_authorizations (handle, session, parameters, created, hinted_subject)
                SELECT \(pending.handle), id, \(parameters), \(created), \(hintedSubject) FROM owner
                """)
        }
        return pending
    }

    public func pending(_ handle: String?, in session: BrowserSession) async throws -> PendingAuthorization? {
        guard let handle, handle.utf8.count <= 64 else { return nil }
        let key = Self.digest(session.cookie)
        let found = try await database.serving { connection in
            let rows = try await connection.query(
                """
                SELECT p.parameters, p.created, p.signed_in_here, p.hinted_subject
                FROM pending_authorizations p JOIN browser_sessions s ON s.id = p.session
                WHERE p.handle = \(handle) AND s.cookie_digest = \(key)
                """, logger: connection.logger)
            for try await row in rows.decode((String, Double, Bool, String?).self) { return Optional(row) }
            return nil
        }
        guard let (text, created, signedInHere, hinted) = found, epoch(clock.now()) - created < policy.pendingLifetime else { return nil }
        // Validated again: the client may have changed since; a request that no longer validates is gone.
        guard let parameters = try? JSONDecoder().decode([String: String].self, from: Data(text.utf8)),
            case .valid(let request) = AuthorizationRequest.validate(parameters, registry: clients())
        else { return nil }
        return PendingAuthorization(
            handle: handle, request: request, created: Date(timeIntervalSince1970: created), signedInHere: signedInHere, hintedSubject: hinted)
    }

    public func close(_ handle: String, in session: BrowserSession) async throws {
        let key = Self.digest(session.cookie)
        try await database.serving { connection in
            try await connection.run(
                """
                DELETE FROM pending_authorizations
                WHERE handle = \(handle) AND session = (SELECT id FROM browser_sessions WHERE cookie_digest = \(key))
                """)
        }
    }

    public func signIn(_ session: BrowserSession, user: User, handle: String) async throws -> BrowserSession {
        let (cookie, csrf) = try BrowserSession.newSecrets()
        let sessionID = try BrowserSession.newHandle()
        let now = epoch(clock.now())
        let (old, new) = (Self.digest(session.cookie), Self.digest(cookie))
        try await database.serving(transaction: true) { connection in
            // The row gets the new cookie: the one planted before the sign-in is worth nothing after it.
            var found: (Int64, String?)?
            let rows = try await connection.query(
                "SELECT id, subject FROM browser_sessions WHERE cookie_digest = \(old) FOR UPDATE", logger: connection.logger)
            for try await row in rows.decode((Int64, String?).self) { found = row }
            guard let (id, subject) = found else {
                try await connection.run(
                    """
                    INSERT INTO browser_sessions (cookie_digest, csrf_token, username, subject, auth_time, session_id, created, last_seen)
                    VALUES (\(new), \(csrf), \(user.username), \(user.subject), \(now), \(sessionID), \(now), \(now))
                    """)
                return
            }
            try await connection.run(
                """
                UPDATE browser_sessions SET cookie_digest = \(new), csrf_token = \(csrf), username = \(user.username), subject = \(user.subject),
                    auth_time = \(now), session_id = \(sessionID), created = \(now), last_seen = \(now)
                WHERE id = \(id)
                """)
            // Another user's open requests are not this user's to finish.
            if subject != user.subject {
                try await connection.run("DELETE FROM pending_authorizations WHERE session = \(id) AND handle <> \(handle)")
            }
            try await connection.run("UPDATE pending_authorizations SET signed_in_here = true WHERE session = \(id) AND handle = \(handle)")
        }
        return BrowserSession(
            cookie: cookie, csrfToken: csrf, username: user.username, subject: user.subject, authTime: Date(timeIntervalSince1970: now),
            sessionID: sessionID)
    }

    public func end(_ session: BrowserSession) async throws {
        let key = Self.digest(session.cookie)
        try await database.serving { connection in try await connection.run("DELETE FROM browser_sessions WHERE cookie_digest = \(key)") }
    }
}
