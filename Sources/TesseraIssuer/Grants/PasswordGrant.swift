import Foundation
import TesseraJOSE

/// RFC 6749 §4.3, off unless a client is registered with it (RFC 9700 §2.4: "MUST NOT be used"; kept for
/// migrations). A successful sign-in starts a refresh-token family when the client may refresh.
public struct PasswordGrant: GrantHandler {
    public let passwords: PasswordSignIn
    public let store: any RefreshTokenStore
    public let clock: WallClock

    public init(passwords: PasswordSignIn, store: any RefreshTokenStore, clock: WallClock = .system) {
        self.passwords = passwords
        self.store = store
        self.clock = clock
    }

    public init(users: @escaping @Sendable () throws -> [User], store: any RefreshTokenStore, clock: WallClock = .system) {
        self.init(passwords: PasswordSignIn(users: users), store: store, clock: clock)
    }

    public func grant(_ request: TokenRequest, client: Client) async throws -> Grant {
        let username = try request.required("username")
        let password = try request.required("password")
        let scope = try TokenEndpoint.resolveScope(try request.scope(), for: client)
        let found: User?
        do { found = try await passwords.authenticate(username, password) } catch is PasswordChecker.Busy {
            throw OAuthError(.temporarilyUnavailable, "too many sign-ins are being checked; retry in a moment", log: "password check queue full")
        }
        guard let user = found else {
            throw OAuthError(.invalidGrant, "the username or password is wrong", log: "wrong password or unknown user \(username)")
        }
        let now = clock.now()
        var grant = Grant(subject: user.subject, scope: scope, authTime: now)
        if client.allows(.refreshToken) {
            do {
                let issued = try await store.issue(
                    NewRefreshTokenFamily(
                        clientID: client.id, subject: user.subject, scope: scope, authTime: now, policy: client.refreshTokens))
                grant.refreshToken = issued.token
                grant.familyID = issued.record.familyID
            } catch let error as RefreshTokenStoreError {
                throw OAuthError(
                    error.code == .unavailable ? .temporarilyUnavailable : .invalidRequest, "the refresh token could not be stored",
                    log: error.message)
            }
        }
        return grant
    }
}
