public import Foundation
public import TesseraJOSE

/// OpenID Connect Core §5.3, without HTTP: the claims about the signed-in user an access token releases.
///
/// The token comes as RFC 6750 says (the `Authorization: Bearer` header, or the form body of a POST) and
/// must be one of this server's access tokens: signed by a published key, `typ: at+jwt`, this `iss`, not
/// expired, with `openid` in its scope, from a family that is still live, for a user who still exists.
/// The answer is `sub` and the claims the token's scope releases (§5.4) and those the `claims` parameter
/// asked for (§5.5). Failures are RFC 6750 §3 errors: `invalid_request`, `invalid_token`, `insufficient_scope`.
public struct UserInfoEndpoint: Sendable {
    public let issuer: String
    public let keys: SigningKeyRing
    public let store: any RefreshTokenStore
    public let users: @Sendable () throws -> [User]
    public let clock: WallClock

    public init(
        issuer: String, keys: SigningKeyRing, store: any RefreshTokenStore, users: @escaping @Sendable () throws -> [User], clock: WallClock = .system
    ) {
        self.issuer = issuer
        self.keys = keys
        self.store = store
        self.users = users
        self.clock = clock
    }

    /// `authorization` is the request's `Authorization` header; `bodyToken` the `access_token` of a form body.
    /// Throws `OAuthError` with an RFC 6750 code; a request that carried no token at all gets `invalid_request`
    /// with `log` "no token" (the HTTP layer then sends a bare challenge, RFC 6750 §3.1).
    public func handle(authorization: String?, bodyToken: String?) async throws -> JSONObject {
        let token = try Self.presentedToken(authorization: authorization, bodyToken: bodyToken)
        guard let parsed = try? UnverifiedJWS(parsing: token), parsed.header.type?.lowercased() == "at+jwt",
            let keySet = keys.current.verificationKeys, let claims = try? parsed.verified(using: keySet).payloadObject(),
            claims["iss"]?.stringValue.sameBytes(as: issuer) == true
        else {
            throw OAuthError(.invalidToken, "the access token is not valid here", log: "userinfo: bad signature, typ or issuer")
        }
        let now = Int64(clock.now().timeIntervalSince1970)
        guard let expiry = claims["exp"]?.numberValue?.int64Value, expiry > now else {
            throw OAuthError(.invalidToken, "the access token has expired")
        }
        if let notBefore = claims["nbf"]?.numberValue?.int64Value, notBefore > now {
            throw OAuthError(.invalidToken, "the access token is not valid yet")
        }
        let scopes = claims["scope"]?.stringValue?.split(separator: " ").map(String.init) ?? []
        guard scopes.contains("openid") else {
            throw OAuthError(.insufficientScope, "the access token was not granted the openid scope")
        }
        if let familyID = claims[Grant.familyClaim]?.stringValue {
            let live: Bool
            do { live = try await store.isFamilyLive(familyID) } catch {
                throw OAuthError(.temporarilyUnavailable, "the token service cannot read its grants right now", log: "\(error)")
            }
            guard live else { throw OAuthError(.invalidToken, "the grant of this access token was revoked") }
        }
        guard let subject = claims["sub"]?.stringValue, let user = try users().withSubject(subject) else {
            throw OAuthError(.invalidToken, "the access token is not for a user of this server (removed, or a client's own token)")
        }
        var names = StandardClaims.released(by: scopes)
        if let asked = claims[OpenIDGrant.userinfoClaim]?.stringValue {
            names.formUnion(asked.split(separator: " ").map(String.init).filter(StandardClaims.names.contains))
        }
        var object = JSONObject(["sub": .string(user.subject)])
        for (name, value) in user.releasedClaims(names) { object[name] = value }
        return object
    }

    /// RFC 6750 §2: exactly one way of sending the token.
    static func presentedToken(authorization: String?, bodyToken: String?) throws -> String {
        var found: [String] = []
        if let authorization {
            let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else {
                throw OAuthError(.invalidRequest, "the Authorization header must be Bearer and a token (RFC 6750 §2.1)")
            }
            found.append(parts[1].trimmingCharacters(in: .whitespaces))
        }
        if let bodyToken { found.append(bodyToken) }
        guard found.count <= 1 else { throw OAuthError(.invalidRequest, "the access token was sent more than one way (RFC 6750 §2)") }
        guard let token = found.first else { throw OAuthError(.invalidRequest, "no access token", log: "no token") }
        guard !token.isEmpty else { throw OAuthError(.invalidToken, "the access token is empty") }
        return token
    }
}
