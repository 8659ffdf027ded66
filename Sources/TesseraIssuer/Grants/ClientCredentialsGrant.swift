import Foundation

/// RFC 6749 §4.4: the client acts on its own behalf; `sub` is its client_id; no refresh token (§4.4.3).
public struct ClientCredentialsGrant: GrantHandler {
    public init() {}

    public func grant(_ request: TokenRequest, client: Client) async throws -> Grant {
        guard client.type == .confidential else {
            throw OAuthError(.unauthorizedClient, "client_credentials needs an authenticated (confidential) client")
        }
        return Grant(subject: client.id, scope: try TokenEndpoint.resolveScope(try request.scope(), for: client))
    }
}
