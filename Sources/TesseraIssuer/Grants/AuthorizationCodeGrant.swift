import Foundation
import TesseraJOSE

/// RFC 6749 §4.1.3 + RFC 7636 §4.5: the code exchange at `/token`.
public struct AuthorizationCodeGrant: GrantHandler {
    public let codes: any AuthorizationCodeRecords
    public let store: any RefreshTokenStore

    public init(codes: any AuthorizationCodeRecords, store: any RefreshTokenStore) {
        self.codes = codes
        self.store = store
    }

    public func grant(_ request: TokenRequest, client: Client) async throws -> Grant {
        let code = try request.required("code")
        let verifier = request["code_verifier"]
        switch try await codes.redeem(code, clientID: client.id) {
        case .failed(let reason):
            throw OAuthError(.invalidGrant, "the authorization code is invalid, expired or used", log: reason)
        case .replayed(let familyID):
            if let familyID { _ = try? await store.revokeFamily(withID: familyID) }
            throw OAuthError(
                .invalidGrant, "the authorization code is invalid, expired or used",
                log: "authorization code replayed: tokens issued from it revoked")
        case .fresh(let record):
            // RFC 6749 §4.1.3: redirect_uri REQUIRED if it was in the authorization request, and identical.
            if let expected = record.redirectURI, !request["redirect_uri"].sameBytes(as: expected) {
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
                issued = try await store.issue(
                    NewRefreshTokenFamily(
                        clientID: client.id, subject: record.subject, scope: record.scope,
                        authTime: record.authTime, policy: client.refreshTokens, context: record.openID?.context ?? ""))
            } catch let error as RefreshTokenStoreError {
                throw OAuthError(
                    error.code == .unavailable ? .temporarilyUnavailable : .invalidRequest, "the grant could not be stored", log: error.message)
            }
            if try await codes.attach(familyID: issued.record.familyID, to: code) {
                _ = try? await store.revokeFamily(withID: issued.record.familyID)
                throw OAuthError(
                    .invalidGrant, "the authorization code is invalid, expired or used", log: "authorization code replayed during its exchange")
            }
            // OpenID Connect Core §11: an OpenID Connect grant is refreshable only with offline_access granted.
            let refreshable = client.allows(.refreshToken) && (record.openID == nil || record.scope.contains("offline_access"))
            return Grant(
                subject: record.subject, scope: record.scope, authTime: record.authTime,
                refreshToken: refreshable ? issued.token : nil, familyID: issued.record.familyID, openID: record.openID, nonce: record.nonce)
        }
    }
}
