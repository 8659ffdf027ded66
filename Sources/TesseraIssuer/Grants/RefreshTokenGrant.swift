import Foundation

/// RFC 6749 §6 through the refresh-token store's one atomic rotation (RFC 9700 §4.14.2).
public struct RefreshTokenGrant: GrantHandler {
    public let store: any RefreshTokenStore
    /// Told about reuse (a security event: the family was revoked) with the family ID; never the token.
    public let onReuse: (@Sendable (_ clientID: String, _ familyID: String) -> Void)?
    /// The users, when the families belong to users of this server: a family whose user was removed is
    /// refused (and revoked). nil: the subject is not checked (a store shared with another user registry).
    public let users: (@Sendable () throws -> [User])?
    public let events: IssuerEventSink

    public init(
        store: any RefreshTokenStore, users: (@Sendable () throws -> [User])? = nil, events: @escaping IssuerEventSink = { _ in },
        onReuse: (@Sendable (String, String) -> Void)? = nil
    ) {
        self.store = store
        self.users = users
        self.events = events
        self.onReuse = onReuse
    }

    public func grant(_ request: TokenRequest, client: Client) async throws -> Grant {
        let token = RefreshToken(try request.required("refresh_token"))
        let requested = try request.scope()
        do {
            let rotation = try await store.rotate(token, clientID: client.id, scope: requested)
            events(rotation.isRetry ? .refreshRetried : .refreshRotated)
            // A client whose allowed scopes shrank since the grant does not keep the dropped ones.
            let scope = rotation.grantedScope.filter(client.scopes.contains)
            let record = rotation.successor.record
            var subject = record.subject
            if let users {
                guard let user = Self.owner(of: record, among: try users()) else {
                    _ = try? await store.revokeFamily(withID: record.familyID)
                    throw OAuthError(.invalidGrant, "the refresh token is invalid, expired or revoked", log: "refresh token of a removed user")
                }
                subject = user.subject
            }
            // Core §12.2: the refreshed ID token keeps sub, aud, auth_time and sid, and has no nonce.
            return Grant(
                subject: subject, scope: scope, authTime: record.authTime, refreshToken: rotation.successor.token,
                familyID: record.familyID, openID: OpenIDGrant(context: record.context))
        } catch let error as RefreshTokenStoreError {
            switch error.code {
            case .invalidScope:
                throw OAuthError(.invalidScope, "the requested scope exceeds the scope originally granted")
            case .unavailable:
                throw OAuthError(.temporarilyUnavailable, "the token service cannot store refresh tokens right now", log: error.message)
            case .reuseDetected:
                events(.refreshReuse)
                if let familyID = error.familyID { onReuse?(client.id, familyID) }
                throw OAuthError(.invalidGrant, "the refresh token is invalid", log: "refresh token reuse: family \(error.familyID ?? "?") revoked")
            case .invalidRequest:
                throw OAuthError(.invalidRequest, error.message)
            default:
                // malformed, unknown, expired, revoked, another client's: one answer (RFC 6749 §5.2).
                throw OAuthError(.invalidGrant, "the refresh token is invalid, expired or revoked", log: "refresh token refused: \(error.code)")
            }
        }
    }

    /// The user a family was issued to: by `sub`; for a family issued before users had one (its subject is
    /// a username), by name, and only a user that existed when the family began (not a later namesake).
    static func owner(of record: RefreshTokenRecord, among users: [User]) -> User? {
        if let user = users.withSubject(record.subject) { return user }
        guard let user = users.named(record.subject), user.created <= record.authTime else { return nil }
        return user
    }
}
