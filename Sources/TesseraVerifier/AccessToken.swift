public import Foundation
public import TesseraJOSE

/// A JWT access token (RFC 9068) whose signature, header and claims passed every check.
///
/// Only `AccessTokenVerifier` makes one: holding an `AccessToken` means it was verified.
public struct AccessToken: Sendable {
    public let issuer: String
    public let subject: String
    /// Every audience the token names (`aud` as a string is a one-element list).
    public let audience: [String]
    public let clientID: String
    /// The `scope` claim as a set (RFC 9068 §2.2.3, RFC 6749 §3.3); empty when absent.
    public let scopes: Set<String>
    public let expiresAt: Date
    public let issuedAt: Date
    public let notBefore: Date?
    /// `jti`.
    public let tokenID: String
    /// `auth_time`, when a user authenticated.
    public let authTime: Date?
    /// The `kid` of the key that verified it.
    public let keyID: String?
    public let header: JWSHeader
    /// Every claim, for typed access to others.
    public let claims: JSONObject

    /// True when every scope in `required` was granted.
    public func hasScopes<S: Sequence>(_ required: S) -> Bool where S.Element == String {
        required.allSatisfy { scopes.contains($0) }
    }

    /// Throws `insufficientScope` unless every scope in `required` was granted.
    public func requireScopes<S: Sequence>(_ required: S) throws where S.Element == String {
        let missing = required.filter { !scopes.contains($0) }
        if !missing.isEmpty {
            throw TokenVerificationError(.insufficientScope, "missing \(missing.count) required scope(s)")
        }
    }

    /// A claim's raw value.
    public subscript(claim name: String) -> JSONValue? { claims[name] }

    /// A string claim: `nil` when absent, `invalidClaim` when present with another type.
    public func stringClaim(_ name: String) throws -> String? {
        guard let value = claims[name] else { return nil }
        guard let string = value.stringValue else {
            throw TokenVerificationError(.invalidClaim, "claim \(name.prefix(64)) is \(value.typeName), not a string")
        }
        return string
    }

    /// A NumericDate claim (RFC 7519 §2): `nil` when absent.
    public func dateClaim(_ name: String) throws -> Date? {
        guard let value = claims[name] else { return nil }
        return try ClaimsValidator.numericDate(value, name)
    }
}
