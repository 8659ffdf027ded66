public import Foundation
public import TesseraJOSE

/// PKCE challenge, the scope, the user and when they signed in.
public struct AuthorizationCodeGrantRecord: Sendable {
    public var clientID: String
    /// The `redirect_uri` of the authorization request, when it carried one (RFC 6749 §4.1.3).
    public var redirectURI: String?
    public var challenge: (value: String, method: PKCE.Method)?
    public var scope: [String]
    public var subject: String
    public var authTime: Date
    /// OpenID Connect requests only: the session and claims request, and the `nonce` to echo.
    public var openID: OpenIDGrant?
    public var nonce: String?

    public init(
        clientID: String, redirectURI: String?, challenge: (value: String, method: PKCE.Method)?, scope: [String], subject: String, authTime: Date,
        openID: OpenIDGrant? = nil, nonce: String? = nil
    ) {
        self.clientID = clientID
        self.redirectURI = redirectURI
        self.challenge = challenge
        self.scope = scope
        self.subject = subject
        self.authTime = authTime
        self.openID = openID
        self.nonce = nonce
    }
}

/// Authorization codes: `tac_` + 256 random bits, kept only as SHA-256 digests, single use, 60 s.
///
/// In memory: a code lives for a minute and a restart only means the user signs in again. A used code
/// is remembered until it would have expired, so a second use is recognised and the tokens issued from
/// it revoked (RFC 6749 §4.1.2: "the authorization server MUST deny the request and SHOULD revoke … all
/// tokens previously issued based on that authorization code").
///
/// Bounded so one signed-in user cannot slow everyone by minting codes (issue 18, item 10): at most
/// `openCodesPerGrant` unused codes per user and client (a new one replaces the oldest), at most
/// `maximumCodes` in all; codes expire in the order they were issued, so issuing one costs no scan.
public final class AuthorizationCodeStore: AuthorizationCodeRecords, @unchecked Sendable {
    public static let lifetime: TimeInterval = 60
    static let maximumCodes = 100_000
    /// Unused codes one user may hold for one client at a time (tabs, retries); the oldest goes first.
    public static let openCodesPerGrant = 10

    private struct Entry {
        var record: AuthorizationCodeGrantRecord
        var expiresAt: Date
        var grant: TokenDigest
        var used = false
        var familyID: String?
        var revokeWhenAttached = false
    }

    private let clock: WallClock
    private let lock = NSLock()
    private var entries: [TokenDigest: Entry] = [:]
    /// Codes in the order they were issued (every code lives `lifetime`, so also the order they expire).
    private var issued: [TokenDigest] = []
    private var oldest = 0
    /// The unused codes of each user and client, oldest first.
    private var openCodes: [TokenDigest: [TokenDigest]] = [:]

    public init(clock: WallClock = .system) { self.clock = clock }

    /// Codes held (used ones are kept until they expire, for replay detection).
    var count: Int { lock.withLock { entries.count } }

    /// Issues a code for `record`.
    public func issue(_ record: AuthorizationCodeGrantRecord) throws -> String {
        let code = try Self.newCode()
        let key = TokenDigest(of: code)
        let grant = TokenDigest(of: record.clientID + "\u{0}" + record.subject)
        let now = clock.now()
        try lock.withLock {
            dropExpired(now)
            guard entries.count < Self.maximumCodes else {
                throw OAuthError(.temporarilyUnavailable, "too many pending authorizations", log: "authorization code table full")
            }
            var open = openCodes[grant] ?? []
            while open.count >= Self.openCodesPerGrant { entries[open.removeFirst()] = nil }
            open.append(key)
            openCodes[grant] = open
            entries[key] = Entry(record: record, expiresAt: now + Self.lifetime, grant: grant)
            issued.append(key)
        }
        return code
    }

    /// A new code: `tac_` + 256 random bits.
    public static func newCode() throws -> String { "tac_" + Base64URL.encode(try SecureRandom.bytes(count: 32)) }

    /// Forgets the codes that have expired, from the oldest, stopping at the first live one.
    private func dropExpired(_ now: Date) {
        while oldest < issued.count {
            let key = issued[oldest]
            if let entry = entries[key] {
                guard entry.expiresAt <= now else { break }
                entries[key] = nil
                if !entry.used { closeOpen(key, of: entry.grant) }
            }
            oldest += 1
        }
        if oldest > 1_024, oldest * 2 > issued.count {
            issued.removeFirst(oldest)
            oldest = 0
        }
    }

    private func closeOpen(_ key: TokenDigest, of grant: TokenDigest) {
        guard var open = openCodes[grant] else { return }
        open.removeAll { $0 == key }
        openCodes[grant] = open.isEmpty ? nil : open
    }

    /// Atomically takes a code for `clientID`: of two concurrent redemptions exactly one is `fresh`.
    /// Another client's code fails without being spent (it is not that client's to burn).
    public func redeem(_ code: String, clientID: String) -> AuthorizationCodeRedemption {
        let key = TokenDigest(of: code)
        let now = clock.now()
        return lock.withLock {
            guard var entry = entries[key], entry.expiresAt > now else { return .failed("unknown or expired authorization code") }
            guard entry.record.clientID.sameBytes(as: clientID) else { return .failed("authorization code issued to another client") }
            if entry.used {
                if entry.familyID == nil {
                    entry.revokeWhenAttached = true
                    entries[key] = entry
                }
                return .replayed(familyID: entry.familyID)
            }
            entry.used = true
            entries[key] = entry
            closeOpen(key, of: entry.grant)
            return .fresh(entry.record)
        }
    }

    /// Records the family the redemption started; true when a replay arrived meanwhile and it must be revoked.
    public func attach(familyID: String, to code: String) -> Bool {
        lock.withLock {
            let key = TokenDigest(of: code)
            entries[key]?.familyID = familyID
            return entries[key]?.revokeWhenAttached ?? false
        }
    }
}

extension AuthorizationCodeGrantRecord {
    private struct Stored: Codable {
        var clientID: String
        var redirectURI: String?
        var challenge: String?
        var challengeMethod: String?
        var scope: [String]
        var subject: String
        var authTime: Double
        var openID: String?
        var nonce: String?

        enum CodingKeys: String, CodingKey {
            case clientID = "client_id"
            case redirectURI = "redirect_uri"
            case challenge
            case challengeMethod = "challenge_method"
            case scope, subject
            case authTime = "auth_time"
            case openID = "openid"
            case nonce
        }
    }

    /// The record as a shared store keeps it (JSON; the OpenID Connect part in its refresh-family context form).
    public func serialized() throws -> String {
        let stored = Stored(
            clientID: clientID, redirectURI: redirectURI, challenge: challenge?.value, challengeMethod: challenge?.method.rawValue, scope: scope,
            subject: subject, authTime: authTime.timeIntervalSince1970, openID: openID?.context, nonce: nonce)
        return String(decoding: try JSONEncoder().encode(stored), as: UTF8.self)
    }

    /// Reads what `serialized()` wrote.
    public init(serialized text: String) throws {
        let stored = try JSONDecoder().decode(Stored.self, from: Data(text.utf8))
        var challenge: (String, PKCE.Method)?
        if let value = stored.challenge {
            guard let method = stored.challengeMethod.flatMap(PKCE.Method.init(rawValue:)) else {
                throw OAuthError(.serverError, "a stored authorization code has an unknown challenge method")
            }
            challenge = (value, method)
        }
        self.init(
            clientID: stored.clientID, redirectURI: stored.redirectURI, challenge: challenge, scope: stored.scope, subject: stored.subject,
            authTime: Date(timeIntervalSince1970: stored.authTime), openID: stored.openID.flatMap(OpenIDGrant.init(context:)), nonce: stored.nonce)
    }
}
