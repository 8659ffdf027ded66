public import Foundation
public import TesseraJOSE

/// OpenID Connect ID tokens (Core §2, §3.1.3.6): minted by the token endpoint for grants whose scope holds
/// `openid`, and read back when an app hands one over as `id_token_hint` (at `/authorize` and `/logout`).
public struct IDTokens: Sendable {
    public let issuer: String
    public let keys: SigningKeyRing
    public let users: @Sendable () throws -> [User]
    public let clock: WallClock

    /// The `typ` of ID tokens: plain `JWT`, never `at+jwt`, so a resource server that follows RFC 9068
    /// refuses an ID token as an access token, and `hintClaims` refuses an access token as an ID token.
    public static let type = "JWT"

    public init(issuer: String, keys: SigningKeyRing, users: @escaping @Sendable () throws -> [User], clock: WallClock = .system) {
        self.issuer = issuer
        self.keys = keys
        self.users = users
        self.clock = clock
    }

    /// The ID token for `grant` (which has `openid` and an `OpenIDGrant`), issued beside `accessToken`:
    /// `iss sub aud exp iat auth_time nonce at_hash sid amr`, and the claims the `claims` parameter asked
    /// for in the ID token. Signed with the client's `id_token_signed_response_alg` (RS256 by default).
    public func mint(_ grant: Grant, client: Client, accessToken: String) throws -> String {
        guard let openID = grant.openID else { throw OAuthError(.serverError, "an ID token for a grant without OpenID Connect data") }
        let snapshot = keys.current
        let algorithm = client.idTokenSigningAlgorithm
        guard let key = snapshot.signer(algorithm) else {
            throw OAuthError(
                .temporarilyUnavailable, "no ID token signing key is active",
                log: "no active \(algorithm.name) key for the ID tokens of \(client.id) (tessera keys generate --alg \(algorithm.name) --activate)")
        }
        let now = Int64(clock.now().timeIntervalSince1970.rounded(.down))
        let lifetime = min(client.accessTokenLifetime, snapshot.ring.policy.maxTokenLifetime)
        var claims = JSONObject([
            "iss": .string(issuer), "sub": .string(grant.subject), "aud": .string(client.id),
            "exp": .number(JSONNumber(now + Int64(lifetime))), "iat": .number(JSONNumber(now)),
        ])
        if let authTime = grant.authTime { claims["auth_time"] = .number(JSONNumber(Int64(authTime.timeIntervalSince1970.rounded(.down)))) }
        if let nonce = grant.nonce { claims["nonce"] = .string(nonce) }
        claims["at_hash"] = .string(algorithm.leftHalfHash(of: accessToken))
        if !openID.sessionID.isEmpty { claims["sid"] = .string(openID.sessionID) }
        // Every sign-in here is a password (RFC 8176 §2). No acr: Tessera has one level of assurance.
        claims["amr"] = .array([.string("pwd")])
        if !openID.claims.idToken.isEmpty, let user = try users().withSubject(grant.subject) {
            for (name, value) in user.releasedClaims(openID.claims.idToken) { claims[name] = value }
        }
        return try JWSSigner(key: key, type: Self.type).sign(claims: claims)
    }

    /// The claims of an ID token this server issued: signed by a key it publishes, `iss` its own, a string
    /// `sub` and an `aud`, and not an access token. An expired one counts (RP-Initiated Logout §2: an app
    /// may log out with the ID token it got hours ago); nil for anything else.
    public func hintClaims(_ token: String) -> JSONObject? {
        guard let parsed = try? UnverifiedJWS(parsing: token), parsed.header.type?.lowercased() != "at+jwt",
            let keySet = keys.current.verificationKeys, let claims = try? parsed.verified(using: keySet).payloadObject(),
            claims["iss"]?.stringValue.sameBytes(as: issuer) == true, claims["sub"]?.stringValue != nil, !Self.audiences(claims).isEmpty
        else { return nil }
        return claims
    }

    /// The `sub` of an ID token this server issued (for `id_token_hint` at `/authorize`).
    public func hintSubject(_ token: String) -> String? { hintClaims(token)?["sub"]?.stringValue }

    /// `aud` as a list (RFC 7519 §4.1.3: a string or an array of strings).
    static func audiences(_ claims: JSONObject) -> [String] {
        switch claims["aud"] {
        case .string(let value)?: [value]
        case .array(let values)?: values.compactMap(\.stringValue)
        default: []
        }
    }
}
