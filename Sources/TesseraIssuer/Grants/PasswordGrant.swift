import Foundation
import TesseraJOSE

/// RFC 6749 §4.3, off unless a client is registered with it (RFC 9700 §2.4: "MUST NOT be used"; kept for
/// migrations). A successful sign-in starts a refresh-token family when the client may refresh.
public struct PasswordGrant: GrantHandler {
    public let users: @Sendable () throws -> [User]
    public let store: any RefreshTokenStore
    public let clock: WallClock

    public init(users: @escaping @Sendable () throws -> [User], store: any RefreshTokenStore, clock: WallClock = .system) {
        self.users = users
        self.store = store
        self.clock = clock
    }

    public func grant(_ request: TokenRequest, client: Client) async throws -> Grant {
        let username = try request.required("username")
        let password = try request.required("password")
        let scope = try TokenEndpoint.resolveScope(try request.scope(), for: client)
        let user = try users().first { $0.username.sameBytes(as: username) }
        guard password.utf8.count <= 1_024, UserStore.verify(password, for: user), let user else {
            throw OAuthError(.invalidGrant, "the username or password is wrong", log: user == nil ? "unknown user" : "wrong password for \(username)")
        }
        let now = clock.now()
        var grant = Grant(subject: user.username, scope: scope, authTime: now)
        if client.allows(.refreshToken) {
            do {
                let issued = try await store.issue(
                    NewRefreshTokenFamily(
                        clientID: client.id, subject: user.username, scope: scope, authTime: now, policy: client.refreshTokens))
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
