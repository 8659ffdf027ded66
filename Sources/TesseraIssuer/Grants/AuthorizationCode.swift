import Foundation
import TesseraJOSE

/// PKCE (RFC 7636): the token request proves it comes from whoever started the authorization.
public enum PKCE {
    public enum Method: String, Sendable {
        case s256 = "S256"
        /// Refused unless a client is configured for it (RFC 9700 §2.1.1: S256 SHOULD be used).
        case plain
    }

    /// RFC 7636 §4.1: code-verifier = 43*128unreserved, unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~".
    public static func isValidVerifier(_ verifier: String) -> Bool {
        (43...128).contains(verifier.utf8.count) && verifier.utf8.allSatisfy(isUnreserved)
    }

    /// A challenge as the authorization request must send it: for S256, 43 base64url characters.
    public static func isValidChallenge(_ challenge: String, method: Method) -> Bool {
        switch method {
        case .s256: return challenge.utf8.count == 43 && (try? Base64URL.decode(challenge))?.count == 32
        case .plain: return isValidVerifier(challenge)
        }
    }

    /// RFC 7636 §4.6: BASE64URL-ENCODE(SHA256(ASCII(code_verifier))) == code_challenge, compared in constant time.
    public static func verify(verifier: String, challenge: String, method: Method) -> Bool {
        guard isValidVerifier(verifier) else { return false }
        let derived = method == .s256 ? Base64URL.encode(Digest.sha256(Array(verifier.utf8))) : verifier
        return ConstantTime.equals(Array(derived.utf8), Array(challenge.utf8))
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || "-._~".utf8.contains(byte)
    }
}

/// What an authorization code stands for (RFC 6749 §4.1.2): bound to the client, the redirect URI, the
/// PKCE challenge, the scope, the user and when they signed in.
public struct AuthorizationCodeGrantRecord: Sendable {
    public var clientID: String
    /// The `redirect_uri` of the authorization request, when it carried one (RFC 6749 §4.1.3).
    public var redirectURI: String?
    public var challenge: (value: String, method: PKCE.Method)?
    public var scope: [String]
    public var subject: String
    public var authTime: Date

    public init(clientID: String, redirectURI: String?, challenge: (value: String, method: PKCE.Method)?, scope: [String], subject: String, authTime: Date) {
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
            guard entry.record.clientID == clientID else { return .failed("authorization code issued to another client") }
            if entry.used {
                if entry.familyID == nil { entry.revokeWhenAttached = true; entries[key] = entry }
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

/// RFC 6749 §4.1.3 + RFC 7636 §4.5: the code exchange at `/token`.
public struct AuthorizationCodeGrant: GrantHandler {
    public let codes: AuthorizationCodeStore
    public let store: any RefreshTokenStore

    public init(codes: AuthorizationCodeStore, store: any RefreshTokenStore) {
        self.codes = codes
        self.store = store
    }

    public func grant(_ request: TokenRequest, client: Client) async throws -> Grant {
        let code = try request.required("code")
        let verifier = request["code_verifier"]
        switch codes.redeem(code, clientID: client.id) {
        case .failed(let reason):
            throw OAuthError(.invalidGrant, "the authorization code is invalid, expired or used", log: reason)
        case .replayed(let familyID):
            if let familyID { _ = try? await store.revokeFamily(withID: familyID) }
            throw OAuthError(.invalidGrant, "the authorization code is invalid, expired or used",
                             log: "authorization code replayed: tokens issued from it revoked")
        case .fresh(let record):
            // RFC 6749 §4.1.3: redirect_uri REQUIRED if it was in the authorization request, and identical.
            if let expected = record.redirectURI, request["redirect_uri"] != expected {
                throw OAuthError(.invalidGrant, "redirect_uri does not match the authorization request")
            }
            switch (record.challenge, verifier) {
            case (let challenge?, let verifier?):
                guard PKCE.verify(verifier: verifier, challenge: challenge.value, method: challenge.method) else {
                    throw OAuthError(.invalidGrant, "code_verifier does not match the code_challenge (RFC 7636 §4.6)")
                }
            case (.some, nil):
                throw OAuthError(.invalidGrant, "code_verifier is missing (RFC 7636 §4.5)")
            case (nil, .some):
                // RFC 9700 §4.8.2: a verifier without a challenge is a downgrade attempt.
                throw OAuthError(.invalidGrant, "code_verifier sent but the authorization request had no code_challenge")
            case (nil, nil):
                break
            }
            // Every exchange starts a family, so a replay can revoke what this one issued (introspection
            // reports its access tokens inactive); the refresh token goes out only if the client may refresh.
            let issued: IssuedRefreshToken
            do {
                issued = try await store.issue(NewRefreshTokenFamily(clientID: client.id, subject: record.subject, scope: record.scope,
                                                                     authTime: record.authTime, policy: client.refreshTokens))
            } catch let error as RefreshTokenStoreError {
                throw OAuthError(error.code == .unavailable ? .temporarilyUnavailable : .invalidRequest, "the grant could not be stored", log: error.message)
            }
            if codes.attach(familyID: issued.record.familyID, to: code) {
                _ = try? await store.revokeFamily(withID: issued.record.familyID)
                throw OAuthError(.invalidGrant, "the authorization code is invalid, expired or used", log: "authorization code replayed during its exchange")
            }
            return Grant(subject: record.subject, scope: record.scope, authTime: record.authTime,
                         refreshToken: client.allows(.refreshToken) ? issued.token : nil, familyID: issued.record.familyID)
        }
    }
}
