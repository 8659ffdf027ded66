public import Foundation
import TesseraJOSE

/// An OAuth 2.0 grant type (RFC 6749 §4, `grant_type`). An open set: new grants are new static members.
public struct GrantType: Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public static let authorizationCode = GrantType("authorization_code")
    public static let refreshToken = GrantType("refresh_token")
    public static let clientCredentials = GrantType("client_credentials")
    /// RFC 6749 §4.3: legacy, off unless a client is registered with it (RFC 9700 §2.4 says MUST NOT be used).
    public static let password = GrantType("password")

    public static let all: [GrantType] = [.authorizationCode, .refreshToken, .clientCredentials, .password]

    public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// A registered client, as kept in the data folder's `clients.json`. Holds a SHA-256 digest of its
/// secret, never the secret: secrets are 256 random bits Tessera generates, so a fast hash is right
/// (a slow one only slows the token endpoint down; Hydra's users measured its bcrypt check dominating).
public struct Client: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// Holds a secret and authenticates with it (RFC 6749 §2.1).
        case confidential
        /// Cannot keep a secret (native and browser apps): identified, not authenticated.
        case `public`
    }

    public var id: String
    public var type: Kind
    /// base64url(SHA-256(secret)) for confidential clients.
    public var secretDigest: String?
    public var grants: [GrantType]
    /// Scopes the client may ask for.
    public var scopes: [String]
    /// Scopes granted when a request names none (RFC 6749 §3.3).
    public var defaultScopes: [String]
    /// The `aud` of its access tokens: the resource server's identifier (RFC 9068 §3).
    public var audience: String
    /// Seconds (default 600).
    public var accessTokenLifetime: Int
    public var refreshTokens: RefreshTokenPolicy
    public var redirectURIs: [String]
    /// RFC 7636 `plain` accepted from this client (absent: refused; RFC 9700 §2.1.1 asks for S256).
    public var pkcePlainAllowed: Bool?
    /// OpenID Connect: the `alg` of this client's ID tokens (absent: RS256, Core §15.1).
    public var idTokenAlgorithm: String?
    /// RP-Initiated Logout 1.0 §3: where `/logout` may send the browser afterwards (exact match).
    public var postLogoutRedirectURIs: [String]?
    public var created: Date

    public init(
        id: String, type: Kind, secretDigest: String?, grants: [GrantType], scopes: [String], defaultScopes: [String],
        audience: String, accessTokenLifetime: Int = 600, refreshTokens: RefreshTokenPolicy = .standard,
        redirectURIs: [String] = [], pkcePlainAllowed: Bool? = nil, idTokenAlgorithm: String? = nil, postLogoutRedirectURIs: [String]? = nil,
        created: Date
    ) {
        self.id = id
        self.type = type
        self.secretDigest = secretDigest
        self.grants = grants
        self.scopes = scopes
        self.defaultScopes = defaultScopes
        self.audience = audience
        self.accessTokenLifetime = accessTokenLifetime
        self.refreshTokens = refreshTokens
        self.redirectURIs = redirectURIs
        self.pkcePlainAllowed = pkcePlainAllowed
        self.idTokenAlgorithm = idTokenAlgorithm
        self.postLogoutRedirectURIs = postLogoutRedirectURIs
        self.created = created
    }

    public func allows(_ grant: GrantType) -> Bool { grants.contains(grant) }

    enum CodingKeys: String, CodingKey {
        case id = "client_id"
        case type, grants, scopes, audience, created
        case secretDigest = "secret_sha256"
        case defaultScopes = "default_scopes"
        case accessTokenLifetime = "access_token_lifetime"
        case refreshTokens = "refresh_tokens"
        case redirectURIs = "redirect_uris"
        case pkcePlainAllowed = "pkce_plain_allowed"
        case idTokenAlgorithm = "id_token_signed_response_alg"
        case postLogoutRedirectURIs = "post_logout_redirect_uris"
    }

    /// The algorithms an ID token may be signed with: asymmetric ones only. HS256 would need the client's
    /// secret as the key (Core §10.1), and Tessera keeps only its digest.
    public static let idTokenAlgorithms: [JWSAlgorithm] = JWSAlgorithm.asymmetric

    /// The `alg` of this client's ID tokens.
    public var idTokenSigningAlgorithm: JWSAlgorithm { idTokenAlgorithm.flatMap(JWSAlgorithm.init(name:)) ?? .rs256 }

    /// The registered redirect URI `uri` stands for, or nil. RFC 9700 §4.1.3: exact string comparison,
    /// with one exception, RFC 8252 §7.3: for a registered loopback IP literal (`http://127.0.0.1/…`,
    /// `http://[::1]/…`) the port may differ, since a native app listens on whatever port is free. Nothing
    /// else may: not the path, the query, the case, nor `localhost` (RFC 8252 §8.3).
    public func registeredRedirectURI(matching uri: String) -> String? {
        if let exact = redirectURIs.first(where: { $0.sameBytes(as: uri) }) { return exact }
        guard let sent = Self.loopbackParts(uri) else { return nil }
        return redirectURIs.first { Self.loopbackParts($0).map { $0.host.sameBytes(as: sent.host) && $0.rest.sameBytes(as: sent.rest) } ?? false }
    }

    /// `http://127.0.0.1[:port]rest` or `http://[::1][:port]rest` split into host and rest (port dropped),
    /// where rest is empty or starts with `/` (so `http://127.0.0.1.evil/` and `…@evil` never match).
    static func loopbackParts(_ uri: String) -> (host: String, rest: Substring)? {
        for host in ["http://127.0.0.1", "http://[::1]"] where uri.hasPrefix(host) {
            var rest = uri.dropFirst(host.count)
            if rest.first == ":" {
                let digits = rest.dropFirst().prefix { $0.isASCII && $0.isNumber }
                guard (1...5).contains(digits.count), let port = Int(digits), port <= 65_535 else { return nil }
                rest = rest.dropFirst(1 + digits.count)
            }
            guard rest.isEmpty || rest.first == "/" else { return nil }
            return (host, rest)
        }
        return nil
    }

    /// The rules a registration must follow; the CLI and a hand-edited file are held to the same ones.
    public func validate() throws {
        guard Self.isValidID(id) else {
            throw RegistrationError(.invalidClientID, "client_id must be 1 to 255 characters of A–Z a–z 0–9 . _ ~ -")
        }
        switch type {
        case .confidential:
            guard let secretDigest, (try? Base64URL.decode(secretDigest))?.count == 32 else {
                throw RegistrationError(.invalidSecret, "confidential client \(id) has no valid secret_sha256")
            }
        case .public:
            guard secretDigest == nil else { throw RegistrationError(.invalidSecret, "public client \(id) must not have a secret") }
            guard !allows(.clientCredentials) else {
                throw RegistrationError(
                    .publicClientCredentials, "public client \(id) cannot use client_credentials: that grant needs a secret (RFC 6749 §4.4)")
            }
            // RFC 9700 §2.4: the password grant MUST NOT be used; Tessera keeps it for legacy confidential clients
            // only. A public client would let anyone holding its (public) id try passwords through it.
            guard !allows(.password) else {
                throw RegistrationError(
                    .publicClientPassword, "public client \(id) cannot use the password grant: only a confidential client may (RFC 9700 §2.4)")
            }
        }
        guard !grants.isEmpty, grants.allSatisfy(GrantType.all.contains) else {
            throw RegistrationError(.invalidGrants, "client \(id): grants must be among \(GrantType.all.map(\.rawValue).joined(separator: ", "))")
        }
        guard scopes.allSatisfy(Scope.isToken), Set(defaultScopes).isSubset(of: Set(scopes)) else {
            throw RegistrationError(.invalidScopes, "client \(id): scopes must be RFC 6749 §3.3 scope tokens, default scopes among them")
        }
        guard !audience.isEmpty, audience.utf8.count <= 1_024 else {
            throw RegistrationError(.invalidAudience, "client \(id): audience must be 1 to 1,024 bytes")
        }
        guard (1...86_400).contains(accessTokenLifetime) else {
            throw RegistrationError(.invalidLifetime, "client \(id): access_token_lifetime must be 1 to 86,400 seconds")
        }
        do { _ = try refreshTokens.validated() } catch let error as RefreshTokenStoreError {
            throw RegistrationError(.invalidLifetime, "client \(id): \(error.message)")
        }
        for uri in redirectURIs {
            if let problem = Self.redirectURIProblem(uri) {
                // The URI is shown escaped: it may hold the very control characters it is refused for.
                throw RegistrationError(.invalidRedirectURI, "client \(id): redirect URI \(uri.debugDescription) \(problem)")
            }
        }
        for uri in postLogoutRedirectURIs ?? [] {
            if let problem = Self.redirectURIProblem(uri) {
                throw RegistrationError(.invalidRedirectURI, "client \(id): post-logout redirect URI \(uri.debugDescription) \(problem)")
            }
        }
        if let idTokenAlgorithm, !Self.idTokenAlgorithms.contains(where: { $0.name == idTokenAlgorithm }) {
            throw RegistrationError(
                .invalidIDTokenAlgorithm,
                "client \(id): id_token_signed_response_alg must be one of \(Self.idTokenAlgorithms.map(\.name).joined(separator: ", "))")
        }
        if allows(.authorizationCode), redirectURIs.isEmpty {
            throw RegistrationError(.missingRedirectURI, "client \(id): authorization_code needs at least one redirect URI")
        }
    }

    /// Why `uri` may not be registered as a redirect URI, or nil. RFC 6749 §3.1.2: absolute, no fragment;
    /// RFC 9700 §2.1 and RFC 8252 §7: `https`, `http` only on a loopback host, or a private-use scheme
    /// with a dot in it (reverse domain: `com.example.app:/cb`), which also keeps out `javascript:`,
    /// `data:`, `file:` and their kind. No user information, no wildcard, nothing but printable ASCII (no
    /// space, CR, LF or other control character reaches `Location` or the CSP).
    static func redirectURIProblem(_ uri: String) -> String? {
        guard !uri.isEmpty, uri.utf8.count <= 2_048 else { return "must be 1 to 2,048 bytes" }
        guard uri.utf8.allSatisfy({ (0x21...0x7E).contains($0) && !"\"<>\\^`{|}".utf8.contains($0) }) else {
            return "may hold only printable ASCII characters allowed in a URI (RFC 3986): no space, control character, quote or brace"
        }
        guard !uri.contains("*") else { return "may not hold a wildcard: redirect URIs match exactly (RFC 9700 §4.1.3)" }
        guard let components = URLComponents(string: uri), let scheme = components.scheme?.lowercased(), !scheme.isEmpty else {
            return "must be an absolute URI (RFC 6749 §3.1.2)"
        }
        guard components.fragment == nil, !uri.contains("#") else { return "may not have a fragment (RFC 6749 §3.1.2)" }
        guard components.user == nil, components.password == nil else { return "may not carry user information (user@host)" }
        switch scheme {
        case "https":
            guard let host = components.host, !host.isEmpty else { return "must name a host" }
        case "http":
            guard let host = components.host, isLoopbackHost(host) else {
                return "may use plain http only on a loopback host (127.0.0.1, [::1], localhost; RFC 8252 §7.3); use https"
            }
        default:
            guard scheme.contains(".") else {
                return "must use https, http on a loopback host, or a private-use scheme with a dot (com.example.app:/cb, RFC 8252 §7.1)"
            }
        }
        return nil
    }

    static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 255
            && id.utf8.allSatisfy {
                (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || "._~-".utf8.contains($0)
            }
    }

    /// A new client secret: `tcs_` and 256 random bits, base64url. Shown once; only its digest is kept.
    public static func generateSecret() throws -> String {
        "tcs_" + Base64URL.encode(try SecureRandom.bytes(count: 32))
    }

    public static func digest(ofSecret secret: String) -> String {
        Base64URL.encode(Digest.sha256(Array(secret.utf8)))
    }
}

extension RefreshTokenPolicy: Codable {
    enum CodingKeys: String, CodingKey {
        case absoluteLifetime = "absolute_lifetime"
        case idleLifetime = "idle_lifetime"
        case retryWindow = "retry_window"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            absoluteLifetime: try container.decode(Int.self, forKey: .absoluteLifetime),
            idleLifetime: try container.decode(Int.self, forKey: .idleLifetime),
            retryWindow: try container.decode(Int.self, forKey: .retryWindow))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(absoluteLifetime, forKey: .absoluteLifetime)
        try container.encode(idleLifetime, forKey: .idleLifetime)
        try container.encode(retryWindow, forKey: .retryWindow)
    }
}
