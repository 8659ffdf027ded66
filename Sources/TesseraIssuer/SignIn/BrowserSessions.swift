public import Foundation
public import TesseraJOSE

/// How long browser sessions and the authorization requests waiting in them live.
public struct SessionPolicy: Sendable {
    /// A session unused this long is gone (seconds).
    public var idleLifetime: TimeInterval = 30 * 60
    /// A sign-in is good for this long at most, however active the session (seconds).
    public var absoluteLifetime: TimeInterval = 12 * 3_600
    /// An authorization request must be finished (sign-in, consent) within this (seconds).
    public var pendingLifetime: TimeInterval = 10 * 60
    /// Authorization requests one browser may have open at once (tabs); the oldest makes way.
    public var maximumPendingPerSession = 8
    public var maximumSessions = 100_000
    /// Open requests across all sessions (each may hold a 2 KiB `state`): about 100 MiB at most.
    public var maximumPendingTotal = 50_000

    public init() {}
}

/// An authorization request between `/authorize` and the code: what the sign-in and consent forms refer
/// to by `handle`, so the request's parameters are never round-tripped through the browser.
public struct PendingAuthorization: Sendable {
    public let handle: String
    public let request: AuthorizationRequest
    public let created: Date
    /// Whether the user signed in while this request was open (`prompt=login` asks for that).
    public var signedInHere = false
    /// The `sub` of the request's `id_token_hint`, once verified: another user signed in must sign in again.
    public var hintedSubject: String?

    public init(handle: String, request: AuthorizationRequest, created: Date, signedInHere: Bool = false, hintedSubject: String? = nil) {
        self.handle = handle
        self.request = request
        self.created = created
        self.signedInHere = signedInHere
        self.hintedSubject = hintedSubject
    }
}

/// What a request sees of its browser session.
public struct BrowserSession: Sendable {
    /// The cookie value (`tbs_` + 256 random bits); only its SHA-256 is kept.
    public let cookie: String
    /// The anti-CSRF token every form of this session carries (RFC 6749 §10.12).
    public let csrfToken: String
    public let username: String?
    /// The signed-in user's `sub` (a user removed and added again under the same name is not this one).
    public let subject: String?
    public let authTime: Date?
    /// The sign-in's session id, OpenID Connect's `sid`: random, new at each sign-in, never the cookie.
    public let sessionID: String?

    public init(cookie: String, csrfToken: String, username: String?, subject: String?, authTime: Date?, sessionID: String?) {
        self.cookie = cookie
        self.csrfToken = csrfToken
        self.username = username
        self.subject = subject
        self.authTime = authTime
        self.sessionID = sessionID
    }

    /// A new session cookie (`tbs_` + 256 random bits) and CSRF token.
    public static func newSecrets() throws -> (cookie: String, csrfToken: String) {
        ("tbs_" + Base64URL.encode(try SecureRandom.bytes(count: 32)), Base64URL.encode(try SecureRandom.bytes(count: 32)))
    }

    /// A new pending request's handle (128 random bits) and a sign-in's `sid`.
    public static func newHandle() throws -> String { Base64URL.encode(try SecureRandom.bytes(count: 16)) }
}

/// Browser sessions of the sign-in and consent pages, in memory: a restart signs everyone out, which
/// costs a user one more sign-in and keeps no session secret on disk. Bounded in number and age.
public final class BrowserSessions: BrowserSessionRecords, @unchecked Sendable {
    private struct Entry {
        var csrfToken: String
        var username: String?
        var subject: String?
        var authTime: Date?
        var sessionID: String?
        var created: Date
        var lastSeen: Date
        /// Oldest first (at most `maximumPendingPerSession`, so a linear search is cheap).
        var pending: [PendingAuthorization] = []

        func isExpired(at now: Date, _ policy: SessionPolicy) -> Bool {
            now.timeIntervalSince(lastSeen) >= policy.idleLifetime || now.timeIntervalSince(created) >= policy.absoluteLifetime
        }

        /// Who goes first when the table is full: anonymous sessions, then the least recently seen.
        static func shedFirst(_ lhs: Entry, _ rhs: Entry) -> Bool {
            (lhs.username == nil ? 0 : 1, lhs.lastSeen) < (rhs.username == nil ? 0 : 1, rhs.lastSeen)
        }
    }

    public let policy: SessionPolicy
    private let clock: WallClock
    private let lock = NSLock()
    private var entries: [TokenDigest: Entry] = [:]
    /// At least the number of open requests (only `open` adds to it; it is recounted when over the bound).
    private var pendingUpperBound = 0

    public init(policy: SessionPolicy = SessionPolicy(), clock: WallClock = .system) {
        self.policy = policy
        self.clock = clock
    }

    /// The session of `cookie` if it is live; nil for a missing, unknown or expired cookie.
    public func session(_ cookie: String?) -> BrowserSession? {
        guard let cookie else { return nil }
        let now = clock.now()
        let key = TokenDigest(of: cookie)
        return lock.withLock {
            guard let entry = entries[key] else { return nil }
            guard !entry.isExpired(at: now, policy) else {
                entries[key] = nil
                return nil
            }
            entries[key]?.lastSeen = now
            return BrowserSession(
                cookie: cookie, csrfToken: entry.csrfToken, username: entry.username, subject: entry.subject, authTime: entry.authTime,
                sessionID: entry.sessionID)
        }
    }

    /// The session of `cookie`, or a new anonymous one.
    public func sessionOrNew(_ cookie: String?) throws -> BrowserSession {
        if let existing = session(cookie) { return existing }
        let (cookie, csrf) = try BrowserSession.newSecrets()
        let now = clock.now()
        lock.withLock {
            if entries.count >= policy.maximumSessions { evict(now: now) }
            entries[TokenDigest(of: cookie)] = Entry(csrfToken: csrf, created: now, lastSeen: now)
        }
        return BrowserSession(cookie: cookie, csrfToken: csrf, username: nil, subject: nil, authTime: nil, sessionID: nil)
    }

    /// Whether `token` is the session's CSRF token (constant time).
    public static func checkCSRF(_ token: String?, for session: BrowserSession) -> Bool {
        guard let token else { return false }
        return ConstantTime.equals(Array(token.utf8), Array(session.csrfToken.utf8))
    }

    /// Keeps `request` in the session until sign-in and consent are done; returns it with its handle.
    public func open(_ request: AuthorizationRequest, in session: BrowserSession, hintedSubject: String? = nil) throws -> PendingAuthorization {
        let pending = PendingAuthorization(
            handle: try BrowserSession.newHandle(), request: request, created: clock.now(), hintedSubject: hintedSubject)
        lock.withLock {
            let key = TokenDigest(of: session.cookie)
            guard var entry = entries[key] else { return }
            if entry.pending.count >= policy.maximumPendingPerSession { entry.pending.removeFirst() }
            entry.pending.append(pending)
            entries[key] = entry
            pendingUpperBound += 1
            if pendingUpperBound > policy.maximumPendingTotal { shedPending(now: pending.created, keeping: key) }
        }
        return pending
    }

    /// The open request `handle` of the session, if it has not expired.
    public func pending(_ handle: String?, in session: BrowserSession) -> PendingAuthorization? {
        guard let handle else { return nil }
        let now = clock.now()
        return lock.withLock {
            guard let pending = entries[TokenDigest(of: session.cookie)]?.pending.first(where: { $0.handle == handle }) else { return nil }
            return now.timeIntervalSince(pending.created) < policy.pendingLifetime ? pending : nil
        }
    }

    /// Ends an open request (answered with a code or an error).
    public func close(_ handle: String, in session: BrowserSession) {
        lock.withLock { entries[TokenDigest(of: session.cookie)]?.pending.removeAll { $0.handle == handle } }
    }

    /// Records a sign-in. The session gets a new cookie and a new CSRF token (no session fixation: a
    /// cookie planted before the sign-in is worth nothing after it); its open requests move along.
    public func signIn(_ session: BrowserSession, user: User, handle: String) throws -> BrowserSession {
        let (cookie, csrf) = try BrowserSession.newSecrets()
        let sessionID = try BrowserSession.newHandle()
        let now = clock.now()
        lock.withLock {
            var entry = entries.removeValue(forKey: TokenDigest(of: session.cookie)) ?? Entry(csrfToken: csrf, created: now, lastSeen: now)
            if entry.subject != user.subject { entry.pending.removeAll { $0.handle != handle } }
            entry.csrfToken = csrf
            entry.username = user.username
            entry.subject = user.subject
            entry.sessionID = sessionID
            entry.authTime = now
            entry.created = now
            entry.lastSeen = now
            if let index = entry.pending.firstIndex(where: { $0.handle == handle }) { entry.pending[index].signedInHere = true }
            entries[TokenDigest(of: cookie)] = entry
        }
        return BrowserSession(
            cookie: cookie, csrfToken: csrf, username: user.username, subject: user.subject, authTime: now, sessionID: sessionID)
    }

    /// Signs the session out (its cookie stops working).
    public func end(_ session: BrowserSession) {
        _ = lock.withLock { entries.removeValue(forKey: TokenDigest(of: session.cookie)) }
    }

    public var count: Int { lock.withLock { entries.count } }

    /// Recounts open requests after dropping expired ones; while over 3/4 of the bound, drops whole
    /// sessions, anonymous and least recently seen first (never `keeping`, the one that just asked).
    private func shedPending(now: Date, keeping: TokenDigest) {
        for (key, entry) in entries {
            let live = entry.pending.filter { now.timeIntervalSince($0.created) < policy.pendingLifetime }
            if live.count != entry.pending.count { entries[key]?.pending = live }
        }
        var total = entries.values.reduce(0) { $0 + $1.pending.count }
        let target = policy.maximumPendingTotal * 3 / 4
        if total > target {
            let ordered = entries.filter { !$0.value.pending.isEmpty && $0.key != keeping }
                .sorted { Entry.shedFirst($0.value, $1.value) }
            for (key, entry) in ordered where total > target {
                entries[key] = nil
                total -= entry.pending.count
            }
        }
        pendingUpperBound = total
    }

    /// Drops expired sessions; if still full, the least recently seen anonymous ones, then any, so that a
    /// flood of new visitors cannot sign out everybody at once before it has to displace its own kind.
    private func evict(now: Date) {
        entries = entries.filter { !$0.value.isExpired(at: now, policy) }
        guard entries.count >= policy.maximumSessions else { return }
        let ordered = entries.sorted { Entry.shedFirst($0.value, $1.value) }
        for (key, _) in ordered.prefix(max(1, policy.maximumSessions / 4)) { entries[key] = nil }
    }
}
