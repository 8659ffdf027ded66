import Foundation
import TesseraJOSE

/// RFC 7009 token revocation, without HTTP. A refresh token revokes its whole family; an access token
/// is accepted and answered with success, but stays valid until it expires: access tokens are
/// self-contained JWTs that resource servers check without calling the issuer (keep them short-lived).
public struct RevocationEndpoint: Sendable {
    public let clients: @Sendable () throws -> ClientRegistry
    public let store: any RefreshTokenStore

    public init(clients: @escaping @Sendable () throws -> ClientRegistry, store: any RefreshTokenStore) {
        self.clients = clients
        self.store = store
    }

    /// Returns normally for success (HTTP 200, also for unknown or invalid tokens, RFC 7009 §2.2).
    public func handle(_ request: TokenRequest) async throws {
        let client = try authenticate(request, clients)
        let token = try request.required("token")
        guard token.hasPrefix(RefreshToken.prefix) else { return }
        do {
            try await store.revokeFamily(of: RefreshToken(token), clientID: client.id)
        } catch let error as RefreshTokenStoreError where error.code == .clientMismatch {
            // RFC 7009 §2.1: the token must have been issued to the client making the request.
            throw OAuthError(.unauthorizedClient, "the token was not issued to this client")
        } catch let error as RefreshTokenStoreError where error.code == .unavailable {
            throw OAuthError(.temporarilyUnavailable, "the token service cannot store revocations right now", log: error.message)
        }
    }
}
