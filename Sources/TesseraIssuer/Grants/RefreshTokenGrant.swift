import Foundation

/// RFC 6749 §6 through the refresh-token store's one atomic rotation (RFC 9700 §4.14.2).
public struct RefreshTokenGrant: GrantHandler {
    public let store: any RefreshTokenStore
    /// Told about reuse (a security event: the family was revoked) with the family ID; never the token.
    public let onReuse: (@Sendable (_ clientID: String, _ familyID: String) -> Void)?

    public init(store: any RefreshTokenStore, onReuse: (@Sendable (String, String) -> Void)? = nil) {
        self.store = store
        self.onReuse = onReuse
    }

    public func grant(_ request: TokenRequest, client: Client) async throws -> Grant {
        let token = RefreshToken(try request.required("refresh_token"))
        let requested = try request.scope()
        do {
            let rotation = try await store.rotate(token, clientID: client.id, scope: requested)
            // A client whose allowed scopes shrank since the grant does not keep the dropped ones.
            let scope = rotation.grantedScope.filter(client.scopes.contains)
            let record = rotation.successor.record
            return Grant(
                subject: record.subject, scope: scope, authTime: record.authTime, refreshToken: rotation.successor.token,
                familyID: record.familyID)
        } catch let error as RefreshTokenStoreError {
            switch error.code {
            case .invalidScope:
                throw OAuthError(.invalidScope, "the requested scope exceeds the scope originally granted")
            case .unavailable:
                throw OAuthError(.temporarilyUnavailable, "the token service cannot store refresh tokens right now", log: error.message)
            case .reuseDetected:
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
}
