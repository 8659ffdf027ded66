import Foundation
import TesseraJOSE

public struct TokenResponse: Sendable, Equatable {
    public let accessToken: String
    public let tokenType = "Bearer"
    public let expiresIn: Int
    public let refreshToken: String?
    public let scope: String
    /// OpenID Connect Core §3.1.3.3: the ID token, when the grant's scope holds `openid`.
    public var idToken: String? = nil

    /// The JSON members, in the order RFC 6749 §5.1 lists them.
    public var json: JSONObject {
        var object = JSONObject([
            "access_token": .string(accessToken), "token_type": .string(tokenType), "expires_in": .number(JSONNumber(expiresIn)),
        ])
        if let refreshToken { object["refresh_token"] = .string(refreshToken) }
        if !scope.isEmpty { object["scope"] = .string(scope) }
        if let idToken { object["id_token"] = .string(idToken) }
        return object
    }
}

/// `grant_type` to the handler registered for it, mint the access token.
public struct TokenEndpoint: Sendable {
    public let clients: @Sendable () throws -> ClientRegistry
    public let handlers: [GrantType: any GrantHandler]
    public let minter: AccessTokenMinter
    /// Mints ID tokens; nil: this endpoint issues none (a plain OAuth 2.0 server).
    public let idTokens: IDTokens?
    public let events: IssuerEventSink

    public init(
        clients: @escaping @Sendable () throws -> ClientRegistry, handlers: [GrantType: any GrantHandler], minter: AccessTokenMinter,
        idTokens: IDTokens? = nil, events: @escaping IssuerEventSink = { _ in }
    ) {
        self.clients = clients
        self.handlers = handlers
        self.minter = minter
        self.idTokens = idTokens
        self.events = events
    }

    /// Answers a token request; every answer is reported (`tokenIssued` or `tokenError`).
    public func handle(_ request: TokenRequest) async throws -> TokenResponse {
        do {
            let (response, grantType, clientID) = try await respond(request)
            events(.tokenIssued(grantType: grantType.rawValue, clientID: clientID))
            return response
        } catch let error as OAuthError {
            events(.tokenError(code: error.code.rawValue))
            throw error
        }
    }

    private func respond(_ request: TokenRequest) async throws -> (TokenResponse, GrantType, String) {
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
        var response = TokenResponse(
            accessToken: token, expiresIn: expiresIn, refreshToken: grant.refreshToken?.rawValue,
            scope: grant.scope.joined(separator: " "))
        if let idTokens, grant.openID != nil, grant.scope.contains("openid") {
            response.idToken = try idTokens.mint(grant, client: client, accessToken: token)
        }
        return (response, grantType, client.id)
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
