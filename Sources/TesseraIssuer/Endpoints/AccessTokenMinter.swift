import Foundation
import TesseraJOSE

/// Mints RFC 9068 access tokens with the key ring's active key.
public struct AccessTokenMinter: Sendable {
    public let issuer: String
    public let keys: SigningKeyRing
    public let clock: WallClock

    public init(issuer: String, keys: SigningKeyRing, clock: WallClock = .system) {
        self.issuer = issuer
        self.keys = keys
        self.clock = clock
    }

    /// `typ: at+jwt`; `iss sub aud exp iat jti client_id scope`, and `auth_time` when a user authenticated.
    public func mint(_ grant: Grant, client: Client) throws -> (token: String, expiresIn: Int) {
        let keySet = keys.current
        guard let key = keySet.signer() else {
            throw OAuthError(.temporarilyUnavailable, "no signing key is active", log: "the key ring has no active key")
        }
        let now = Int64(clock.now().timeIntervalSince1970.rounded(.down))
        // The key ring's retention covers tokens up to max_token_lifetime: never outlive it.
        let lifetime = min(client.accessTokenLifetime, keySet.ring.policy.maxTokenLifetime)
        var claims = JSONObject([
            "iss": .string(issuer), "sub": .string(grant.subject), "aud": .string(client.audience),
            "exp": .number(JSONNumber(now + Int64(lifetime))), "iat": .number(JSONNumber(now)),
            "jti": .string(Base64URL.encode(try SecureRandom.bytes(count: 16))), "client_id": .string(client.id),
        ])
        if !grant.scope.isEmpty { claims["scope"] = .string(grant.scope.joined(separator: " ")) }
        if let familyID = grant.familyID { claims[Grant.familyClaim] = .string(familyID) }
        if let userinfo = grant.openID?.claims.userinfo, !userinfo.isEmpty, grant.scope.contains("openid") {
            claims[OpenIDGrant.userinfoClaim] = .string(userinfo.sorted().joined(separator: " "))
        }
        if let authTime = grant.authTime { claims["auth_time"] = .number(JSONNumber(Int64(authTime.timeIntervalSince1970.rounded(.down)))) }
        return (try JWSSigner(key: key, type: "at+jwt").sign(claims: claims), lifetime)
    }
}

/// The token endpoint's logic (RFC 6749 §3.2), without HTTP: authenticate the client once, dispatch on
