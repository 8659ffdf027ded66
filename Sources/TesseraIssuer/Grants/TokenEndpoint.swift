import Foundation
import TesseraJOSE

/// A token request's parameters (RFC 6749 §3.2): the form body, already checked by the server for
/// repeated parameters and size, and the `Authorization` header if any.
public struct TokenRequest: Sendable {
    public var parameters: [String: String]
    public var authorization: String?

    public init(parameters: [String: String], authorization: String? = nil) {
        self.parameters = parameters
        self.authorization = authorization
    }

    public subscript(name: String) -> String? { parameters[name] }

    /// A parameter that must be present and non-empty (RFC 6749 §5.2 `invalid_request` otherwise).
    public func required(_ name: String) throws -> String {
        guard let value = parameters[name], !value.isEmpty else {
            throw OAuthError(.invalidRequest, "the \(name) parameter is missing")
        }
        return value
    }

    /// The `scope` parameter as scope tokens (RFC 6749 §3.3); nil when absent.
    public func scope() throws -> [String]? {
        try parameters["scope"].map(Self.parseScope)
    }

    /// RFC 6749 §3.3: scope tokens separated by single spaces; duplicates dropped, order kept.
    static func parseScope(_ text: String) throws -> [String] {
        let tokens = text.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard !text.isEmpty, tokens.allSatisfy(RefreshTokenLedger.isScopeToken) else {
            throw OAuthError(.invalidScope, "scope must be scope tokens separated by single spaces (RFC 6749 §3.3)")
        }
        return RefreshTokenLedger.normalized(tokens)
    }
}

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

    public init(subject: String, scope: [String], authTime: Date? = nil, refreshToken: RefreshToken? = nil, familyID: String? = nil) {
        self.subject = subject
        self.scope = scope
        self.authTime = authTime
        self.refreshToken = refreshToken
        self.familyID = familyID
    }

    /// The private claim carrying `familyID` (a digest: safe to expose, links nothing outside Tessera).
    public static let familyClaim = "tessera_rtf"
}

/// One grant type's handler: validates its parameters and returns a `Grant`. Only the token endpoint
/// mints tokens and touches keys (fosite's split, typed).
public protocol GrantHandler: Sendable {
    func grant(_ request: TokenRequest, client: Client) async throws -> Grant
}

/// The successful token response (RFC 6749 §5.1).
public struct TokenResponse: Sendable, Equatable {
    public let accessToken: String
    public let tokenType = "Bearer"
    public let expiresIn: Int
    public let refreshToken: String?
    public let scope: String

    /// The JSON members, in the order RFC 6749 §5.1 lists them.
    public var json: JSONObject {
        var object = JSONObject(["access_token": .string(accessToken), "token_type": .string(tokenType), "expires_in": .number(JSONNumber(expiresIn))])
        if let refreshToken { object["refresh_token"] = .string(refreshToken) }
        if !scope.isEmpty { object["scope"] = .string(scope) }
        return object
    }
}

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
        guard let key = keys.current.signer() else {
            throw OAuthError(.temporarilyUnavailable, "no signing key is active", log: "the key ring has no active key")
        }
        let now = Int64(clock.now().timeIntervalSince1970.rounded(.down))
        // The key ring's retention covers tokens up to max_token_lifetime: never outlive it.
        let lifetime = min(client.accessTokenLifetime, keys.current.ring.policy.maxTokenLifetime)
        var claims = JSONObject([
            "iss": .string(issuer), "sub": .string(grant.subject), "aud": .string(client.audience),
            "exp": .number(JSONNumber(now + Int64(lifetime))), "iat": .number(JSONNumber(now)),
            "jti": .string(Base64URL.encode(try SecureRandom.bytes(count: 16))), "client_id": .string(client.id),
        ])
        if !grant.scope.isEmpty { claims["scope"] = .string(grant.scope.joined(separator: " ")) }
        if let familyID = grant.familyID { claims[Grant.familyClaim] = .string(familyID) }
        if let authTime = grant.authTime { claims["auth_time"] = .number(JSONNumber(Int64(authTime.timeIntervalSince1970.rounded(.down)))) }
        return (try JWSSigner(key: key, type: "at+jwt").sign(claims: claims), lifetime)
    }
}

/// The token endpoint's logic (RFC 6749 §3.2), without HTTP: authenticate the client once, dispatch on
/// `grant_type` to the handler registered for it, mint the access token.
public struct TokenEndpoint: Sendable {
    public let clients: @Sendable () throws -> ClientRegistry
    public let handlers: [GrantType: any GrantHandler]
    public let minter: AccessTokenMinter

    public init(clients: @escaping @Sendable () throws -> ClientRegistry, handlers: [GrantType: any GrantHandler], minter: AccessTokenMinter) {
        self.clients = clients
        self.handlers = handlers
        self.minter = minter
    }

    public func handle(_ request: TokenRequest) async throws -> TokenResponse {
        let grantName = try request.required("grant_type")
        let client = try authenticate(request, clients)
        let grantType = GrantType(grantName)
        guard let handler = handlers[grantType] else {
            throw OAuthError(.unsupportedGrantType, "grant_type \(grantName.prefix(64)) is not supported")
        }
        guard client.allows(grantType) else {
            throw OAuthError(.unauthorizedClient, "this client may not use grant_type \(grantType)")
        }
        let grant = try await handler.grant(request, client: client)
        let (token, expiresIn) = try minter.mint(grant, client: client)
        return TokenResponse(accessToken: token, expiresIn: expiresIn, refreshToken: grant.refreshToken?.rawValue,
                             scope: grant.scope.joined(separator: " "))
    }

    /// RFC 6749 §3.3: the requested scope must be allowed; none requested means the client's defaults.
    public static func resolveScope(_ requested: [String]?, for client: Client) throws -> [String] {
        guard let requested else { return client.defaultScopes }
        guard Set(requested).isSubset(of: Set(client.scopes)) else {
            throw OAuthError(.invalidScope, "the requested scope is not allowed for this client")
        }
        return requested
    }
}

/// RFC 6749 §4.4: the client acts on its own behalf; `sub` is its client_id; no refresh token (§4.4.3).
public struct ClientCredentialsGrant: GrantHandler {
    public init() {}

    public func grant(_ request: TokenRequest, client: Client) async throws -> Grant {
        guard client.type == .confidential else {
            throw OAuthError(.unauthorizedClient, "client_credentials needs an authenticated (confidential) client")
        }
        return Grant(subject: client.id, scope: try TokenEndpoint.resolveScope(try request.scope(), for: client))
    }
}

/// RFC 6749 §6 through the refresh-token store's one atomic rotation (RFC 9700 §4.14.2).
public struct RefreshTokenGrant: GrantHandler {
    public let store: any RefreshTokenStore
    /// Told about reuse (a security event: the family was revoked) with the family ID; never the token.
    public let onReuse: (@Sendable (_ clientID: String, _ familyID: String) -> Void)?

    public init(store: any RefreshTokenStore, onReuse: (@Sendable (String, String) -> Void)? = nil) {
        self.store = store
        self.onReuse = onReuse
    }

    public func grant(_ request: TokenRequest, client: Client) async throws -> Grant {
        let token = RefreshToken(try request.required("refresh_token"))
        let requested = try request.scope()
        do {
            let rotation = try await store.rotate(token, clientID: client.id, scope: requested)
            // A client whose allowed scopes shrank since the grant does not keep the dropped ones.
            let scope = rotation.grantedScope.filter(client.scopes.contains)
            let record = rotation.successor.record
            return Grant(subject: record.subject, scope: scope, authTime: record.authTime, refreshToken: rotation.successor.token,
                         familyID: record.familyID)
        } catch let error as RefreshTokenStoreError {
            switch error.code {
            case .invalidScope:
                throw OAuthError(.invalidScope, "the requested scope exceeds the scope originally granted")
            case .unavailable:
                throw OAuthError(.temporarilyUnavailable, "the token service cannot store refresh tokens right now", log: error.message)
            case .reuseDetected:
                if let familyID = error.familyID { onReuse?(client.id, familyID) }
                throw OAuthError(.invalidGrant, "the refresh token is invalid", log: "refresh token reuse: family \(error.familyID ?? "?") revoked")
            case .invalidRequest:
                throw OAuthError(.invalidRequest, error.message)
            default:
                // malformed, unknown, expired, revoked, another client's: one answer (RFC 6749 §5.2).
                throw OAuthError(.invalidGrant, "the refresh token is invalid, expired or revoked", log: "refresh token refused: \(error.code)")
            }
        }
    }
}
