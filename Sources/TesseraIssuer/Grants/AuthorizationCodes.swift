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

    public init(
        clientID: String, redirectURI: String?, challenge: (value: String, method: PKCE.Method)?, scope: [String], subject: String, authTime: Date
    ) {
        self.clientID = clientID
        self.redirectURI = redirectURI
        self.challenge = challenge
        self.scope = scope
        self.subject = subject
        self.authTime = authTime
    }
}

/// Authorization codes: `tac_` + 256 random bits, kept only as SHA-256 digests, single use, 60 s.
///
/// In memory: a code lives for a minute and a restart only means the user signs in again. A used code
/// is remembered until it would have expired, so a second use is recognised and the tokens issued from
/// it revoked (RFC 6749 §4.1.2: "the authorization server MUST deny the request and SHOULD revoke … all
/// tokens previously issued based on that authorization code").
public final class AuthorizationCodeStore: @unchecked Sendable {
    public static let lifetime: TimeInterval = 60
    static let maximumCodes = 100_000

    enum Redemption {
        case fresh(AuthorizationCodeGrantRecord)
        /// Already used: revoke the family it started (nil while the first redemption has not attached it yet).
        case replayed(familyID: String?)
        case failed(String)
    }

    private struct Entry {
        var record: AuthorizationCodeGrantRecord
        var expiresAt: Date
        var used = false
        var familyID: String?
        var revokeWhenAttached = false
    }

    private let clock: WallClock
    private let lock = NSLock()
    private var entries: [TokenDigest: Entry] = [:]

    public init(clock: WallClock = .system) { self.clock = clock }

    /// Issues a code for `record`.
    public func issue(_ record: AuthorizationCodeGrantRecord) throws -> String {
        let code = "tac_" + Base64URL.encode(try SecureRandom.bytes(count: 32))
        let now = clock.now()
        try lock.withLock {
            entries = entries.filter { $0.value.expiresAt > now }
            guard entries.count < Self.maximumCodes else {
                throw OAuthError(.temporarilyUnavailable, "too many pending authorizations", log: "authorization code table full")
            }
            entries[TokenDigest(of: code)] = Entry(record: record, expiresAt: now + Self.lifetime)
        }
        return code
    }

    /// Atomically takes a code for `clientID`: of two concurrent redemptions exactly one is `fresh`.
    /// Another client's code fails without being spent (it is not that client's to burn).
    func redeem(_ code: String, clientID: String) -> Redemption {
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
            return .fresh(entry.record)
        }
    }

    /// Records the family the redemption started; true when a replay arrived meanwhile and it must be revoked.
    func attach(familyID: String, to code: String) -> Bool {
        lock.withLock {
            let key = TokenDigest(of: code)
            entries[key]?.familyID = familyID
            return entries[key]?.revokeWhenAttached ?? false
        }
    }
}
