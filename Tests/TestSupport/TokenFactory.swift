public import Foundation
public import TesseraJOSE
public import TesseraVerifier

/// Builds RFC 9068 access tokens (or deliberately broken ones) with a real key.
public struct TokenFactory: Sendable {
    public let key: SigningKey

    public init(key: SigningKey) { self.key = key }
    public var issuer = "https://issuer.example"
    public var audience = "https://rs.example"
    public var now: Int64 = 1_700_000_000

    public var standardClaims: JSONObject {
        JSONObject([
            "iss": .string(issuer), "sub": .string("alice"), "aud": .string(audience),
            "exp": .number(JSONNumber(now + 600)), "iat": .number(JSONNumber(now)),
            "jti": .string("jti-1"), "client_id": .string("app"), "scope": .string("read write"),
        ])
    }

    public var standardHeader: String { #"{"alg":"\#(key.algorithm.name)","typ":"at+jwt","kid":"\#(key.keyID!)"}"# }

    /// A token with exactly this header and payload text, signed over those bytes by `signer` (default: the key).
    public func token(header: String? = nil, payload: String? = nil, signer: SigningKey? = nil) throws -> String {
        let input =
            Base64URL.encode(Array((header ?? standardHeader).utf8)) + "."
            + Base64URL.encode(Array((payload ?? standardClaims.jsonString).utf8))
        return input + "." + Base64URL.encode(try (signer ?? key).signature(for: Array(input.utf8)))
    }

    public func token(modifying change: (inout JSONObject) -> Void) throws -> String {
        var claims = standardClaims
        change(&claims)
        return try token(payload: claims.jsonString)
    }

    public func configuration(leeway: TimeInterval = 0) -> AccessTokenVerifier.Configuration {
        var configuration = AccessTokenVerifier.Configuration(issuer: issuer, audience: audience)
        configuration.leeway = leeway
        configuration.clock = .fixed(Date(timeIntervalSince1970: TimeInterval(now)))
        return configuration
    }

    public func verifier(leeway: TimeInterval = 0) throws -> AccessTokenVerifier {
        try AccessTokenVerifier(configuration: configuration(leeway: leeway), keys: try VerificationKeySet([try key.verificationKey()]))
    }
}
