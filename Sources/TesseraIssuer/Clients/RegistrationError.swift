import Foundation
import TesseraJOSE

/// A client or user registration that breaks a rule, naming the rule by its code so a caller (and a test)
/// can tell which; the message says what to change. The CLI and a hand-edited `clients.json` or
/// `users.json` are held to the same rules.
public struct RegistrationError: CodedError {
    public typealias Code = ErrorCode<RegistrationError>

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) { (self.code, self.message) = (code, message) }
}

/// The codes of `RegistrationError`.
extension ErrorCode where Domain == RegistrationError {
    // Clients (docs/clients.md)
    /// Not 1 to 255 characters of A–Z a–z 0–9 . _ ~ -
    public static var invalidClientID: Self { Self("invalid_client_id") }
    /// The same client_id twice in one registry.
    public static var duplicateClientID: Self { Self("duplicate_client_id") }
    /// A confidential client without a valid secret digest, or a public one with a secret.
    public static var invalidSecret: Self { Self("invalid_secret") }
    /// A public client registered for client_credentials (that grant needs a secret, RFC 6749 §4.4).
    public static var publicClientCredentials: Self { Self("public_client_credentials") }
    /// A public client registered for the password grant (legacy, confidential clients only: RFC 9700 §2.4).
    public static var publicClientPassword: Self { Self("public_client_password") }
    /// No grant, or one Tessera does not offer.
    public static var invalidGrants: Self { Self("invalid_grants") }
    /// A scope that is not an RFC 6749 §3.3 scope token, or a default scope outside the allowed ones.
    public static var invalidScopes: Self { Self("invalid_scopes") }
    public static var invalidAudience: Self { Self("invalid_audience") }
    /// An access-token lifetime or refresh-token policy out of range.
    public static var invalidLifetime: Self { Self("invalid_lifetime") }
    /// A redirect URI that is not absolute, has a fragment, an unsafe scheme, user information, a wildcard or a
    /// character outside printable ASCII (RFC 6749 §3.1.2, RFC 8252 §7).
    public static var invalidRedirectURI: Self { Self("invalid_redirect_uri") }
    /// authorization_code without any redirect URI.
    public static var missingRedirectURI: Self { Self("missing_redirect_uri") }
    /// A client of that id is registered already.
    public static var clientExists: Self { Self("client_exists") }
    /// A registry file of a version this build does not read.
    public static var unsupportedVersion: Self { Self("unsupported_version") }

    // Users
    /// Not 1 to 255 bytes of visible characters (no space, control, format character, `:` `"` `\` `<` `>`).
    public static var invalidUsername: Self { Self("invalid_username") }
    public static var userExists: Self { Self("user_exists") }
    /// A password shorter than 8 or longer than 1,024 bytes.
    public static var invalidPassword: Self { Self("invalid_password") }
    /// An imported hash Tessera cannot use (unknown scheme, too few iterations).
    public static var invalidPasswordHash: Self { Self("invalid_password_hash") }
    /// A username equal to a client_id, or a client_id equal to a username (THREATS B13: `sub` would be ambiguous).
    public static var nameTaken: Self { Self("name_taken") }
    /// A user claim that is not a standard one (OpenID Connect Core §5.1), or a value it cannot have.
    public static var invalidClaim: Self { Self("invalid_claim") }
    public static var unknownUser: Self { Self("unknown_user") }
    /// An `id_token_signed_response_alg` Tessera cannot sign ID tokens with.
    public static var invalidIDTokenAlgorithm: Self { Self("invalid_id_token_alg") }
}
