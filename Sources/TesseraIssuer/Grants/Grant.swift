public import Foundation

/// What a grant handler decided: who the token is for and what it may do.
public struct Grant: Sendable {
    public var subject: String
    public var scope: [String]
    /// When the resource owner authenticated (user grants); becomes `auth_time`.
    public var authTime: Date?
    /// A refresh token to return: a rotated successor, or a new family's first token.
    public var refreshToken: RefreshToken?
    /// The refresh-token family the access token belongs to (its ID, not the token), so introspection
    /// can report it inactive once the family is revoked (RFC 9700 §4.14.2, THREATS B11).
    public var familyID: String?
    /// OpenID Connect grants (authorization code with `openid`, and their refreshes): the session and the
    /// claims request; with `openid` in `scope`, the token endpoint adds an ID token.
    public var openID: OpenIDGrant?
    /// The authorization request's `nonce`, for the ID token of the code exchange only (Core §12.2: never on refresh).
    public var nonce: String?

    public init(
        subject: String, scope: [String], authTime: Date? = nil, refreshToken: RefreshToken? = nil, familyID: String? = nil,
        openID: OpenIDGrant? = nil, nonce: String? = nil
    ) {
        self.subject = subject
        self.scope = scope
        self.authTime = authTime
        self.refreshToken = refreshToken
        self.familyID = familyID
        self.openID = openID
        self.nonce = nonce
    }

    /// The private claim carrying `familyID` (a digest: safe to expose, links nothing outside Tessera).
    public static let familyClaim = "tessera_rtf"
}

/// The successful token response (RFC 6749 §5.1).

/// One grant type's handler: validates its parameters and returns a `Grant`. Only the token endpoint
/// mints tokens and touches keys (fosite's split, typed).
public protocol GrantHandler: Sendable {
    func grant(_ request: TokenRequest, client: Client) async throws -> Grant
}
