import Foundation
import TesseraJOSE

/// The RFC 9068 §4 checks of a JWT access token's header and claims, as pure functions of the
/// configuration, the time and the token (no I/O), so tests reach every rule directly.
enum ClaimsValidator {
    /// Claims RFC 9068 §2.2 requires in every access token.
    static let requiredClaims = ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"]

    /// The largest |NumericDate| accepted: 2^53 s, where doubles are still exact integers.
    /// Beyond it (`exp: 2^63`, `1e30`) a value is refused, never wrapped or rounded into range.
    static let numericDateBound = 9_007_199_254_740_992.0

    /// RFC 9068 §4: `typ` must be `at+jwt`. RFC 7515 §4.1.9: media type names compare
    /// case-insensitively and `application/` is implied when the value has no `/`.
    static func checkType(_ header: JWSHeader) throws {
        guard let type = header.type else {
            throw TokenVerificationError(.invalidType, "header has no typ; access tokens carry typ at+jwt (RFC 9068 §2.1)")
        }
        guard isAccessTokenType(type) else {
            throw TokenVerificationError(.invalidType, "typ is not at+jwt (an ID token or another kind of JWT)")
        }
        if header.contentType != nil {
            throw TokenVerificationError(.nestedToken, "cty header: access tokens are never nested")
        }
    }

    /// `at+jwt` or `application/at+jwt`, ASCII case-insensitively (no allocation on the hot path).
    static func isAccessTokenType(_ type: String) -> Bool {
        var type = type
        return type.withUTF8 { bytes in
            let expected = Array("application/at+jwt".utf8)
            let suffix = bytes.count == 6 ? 12 : 0
            guard bytes.count == 6 || bytes.count == 18 else { return false }
            for offset in 0..<bytes.count {
                var byte = bytes[offset]
                if (0x41...0x5A).contains(byte) { byte |= 0x20 }
                if byte != expected[suffix + offset] { return false }
            }
            return true
        }
    }

    static func numericDate(_ value: JSONValue, _ name: String) throws -> Date {
        guard let number = value.numberValue else {
            throw TokenVerificationError(.invalidClaim, "\(name) is \(value.typeName), not a NumericDate")
        }
        let seconds: Double
        if let exact = number.int64Value, abs(Double(exact)) <= numericDateBound {
            seconds = Double(exact)
        } else {
            seconds = number.doubleValue
            guard seconds.isFinite, abs(seconds) <= numericDateBound else {
                throw TokenVerificationError(.invalidClaim, "\(name) is out of the representable range")
            }
        }
        return Date(timeIntervalSince1970: seconds)
    }

    static func requiredString(_ claims: JSONObject, _ name: String) throws -> String {
        guard let value = claims[name] else { throw TokenVerificationError(.missingClaim, "no \(name) claim") }
        guard let string = value.stringValue else {
            throw TokenVerificationError(.invalidClaim, "\(name) is \(value.typeName), not a string")
        }
        return string
    }

    /// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), separated by single spaces.
    static func scopes(_ claims: JSONObject) throws -> Set<String> {
        guard let value = claims["scope"] else { return [] }
        guard let scope = value.stringValue else {
            throw TokenVerificationError(.invalidClaim, "scope is \(value.typeName), not a space-separated string")
        }
        if scope.isEmpty { return [] }
        guard let tokens = Scope.parse(scope) else {
            throw TokenVerificationError(.invalidClaim, "scope is not a space-separated list of scope tokens")
        }
        return Set(tokens)
    }

    /// Checks every claim and builds the verified token.
    static func accessToken(
        from verified: VerifiedJWS, configuration: AccessTokenVerifier.Configuration,
        now: Date
    ) throws -> AccessToken {
        let claims: JSONObject
        do {
            claims = try verified.payloadObject()
        } catch let error as JOSEError {
            throw TokenVerificationError(.malformedClaims, "claims set: \(error.message)")
        }
        for name in requiredClaims where claims[name] == nil {
            throw TokenVerificationError(.missingClaim, "no \(name) claim (required by RFC 9068 §2.2)")
        }
        // RFC 9068 §4: the issuer identifier MUST exactly match the iss claim.
        let issuer = try requiredString(claims, "iss")
        guard issuer.sameBytes(as: configuration.issuer) else { throw TokenVerificationError(.invalidIssuer, "iss is not the expected issuer") }
        // RFC 9068 §4: the aud claim MUST contain a resource indicator value this server accepts.
        let audience: [String]
        switch claims["aud"]! {
        case .string(let single): audience = [single]
        case .array(let values):
            audience = try values.map {
                guard let string = $0.stringValue else { throw TokenVerificationError(.invalidClaim, "aud holds a non-string") }
                return string
            }
        default: throw TokenVerificationError(.invalidClaim, "aud is neither a string nor an array of strings")
        }
        guard audience.contains(where: { value in configuration.audiences.contains { $0.sameBytes(as: value) } }) else {
            throw TokenVerificationError(.invalidAudience, "aud does not name this resource server")
        }
        let leeway = configuration.leeway
        // RFC 7519 §4.1.4: the current time MUST be before exp (exp == now is expired).
        let expiresAt = try numericDate(claims["exp"]!, "exp")
        guard now < expiresAt.addingTimeInterval(leeway) else { throw TokenVerificationError(.expired, "the token has expired") }
        var notBefore: Date?
        if let value = claims["nbf"] {
            let date = try numericDate(value, "nbf")
            guard date <= now.addingTimeInterval(leeway) else { throw TokenVerificationError(.notYetValid, "nbf is in the future") }
            notBefore = date
        }
        let issuedAt = try numericDate(claims["iat"]!, "iat")
        guard issuedAt <= now.addingTimeInterval(leeway) else {
            throw TokenVerificationError(.issuedInFuture, "iat is in the future beyond the clock leeway")
        }
        let authTime = try claims["auth_time"].map { try numericDate($0, "auth_time") }
        return AccessToken(
            issuer: issuer, subject: try requiredString(claims, "sub"), audience: audience,
            clientID: try requiredString(claims, "client_id"), scopes: try scopes(claims),
            expiresAt: expiresAt, issuedAt: issuedAt, notBefore: notBefore,
            tokenID: try requiredString(claims, "jti"), authTime: authTime,
            keyID: verified.keyID, header: verified.header, claims: claims)
    }
}
