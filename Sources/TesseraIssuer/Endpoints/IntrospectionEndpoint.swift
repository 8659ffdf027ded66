import Foundation
import TesseraJOSE

/// RFC 7662 token introspection, without HTTP, for authenticated (confidential) clients only. A refresh
/// token is active only for the client it was issued to; an access token is active when its signature,
/// `typ`, `iss` and `exp` check out against the server's own keys.
public struct IntrospectionEndpoint: Sendable {
    public let clients: @Sendable () throws -> ClientRegistry
    public let store: any RefreshTokenStore
    public let keys: SigningKeyRing
    public let issuer: String
    public let clock: WallClock
    /// The users, when the refresh families belong to users of this server: the tokens of a removed user are
    /// inactive (the token endpoint refuses them), as `RefreshTokenGrant` does. nil: not checked.
    public let users: (@Sendable () throws -> [User])?

    public init(
        clients: @escaping @Sendable () throws -> ClientRegistry, store: any RefreshTokenStore, keys: SigningKeyRing,
        issuer: String, clock: WallClock = .system, users: (@Sendable () throws -> [User])? = nil
    ) {
        self.clients = clients
        self.store = store
        self.keys = keys
        self.issuer = issuer
        self.clock = clock
        self.users = users
    }

    public func handle(_ request: TokenRequest) async throws -> JSONObject {
        let client = try authenticate(request, clients)
        guard client.type == .confidential else {
            // RFC 7662 §4: the endpoint must require authorization, against token scanning.
            throw OAuthError(.invalidClient, "client authentication failed", log: "public client \(client.id) may not introspect")
        }
        let token = try request.required("token")
        let inactive = JSONObject(["active": .bool(false)])
        if token.hasPrefix(RefreshToken.prefix) {
            guard let record = try await readingStore({ try await store.record(for: RefreshToken(token)) }), record.state == .live,
                record.clientID.sameBytes(as: client.id), try users.map({ RefreshTokenGrant.owner(of: record, among: try $0()) != nil }) ?? true
            else {
                return inactive
            }
            var object = JSONObject([
                "active": .bool(true), "token_type": .string("refresh_token"), "client_id": .string(record.clientID),
                "sub": .string(record.subject), "iat": seconds(record.issuedAt), "exp": seconds(record.expiresAt),
            ])
            if !record.scope.isEmpty { object["scope"] = .string(record.scope.joined(separator: " ")) }
            return object
        }
        guard let claims = verifiedAccessToken(token) else { return inactive }
        if case .string(let familyID)? = claims[Grant.familyClaim], try await readingStore({ try await store.isFamilyLive(familyID) }) != true {
            return inactive  // issued from a family since revoked (reuse, RFC 7009 revocation, or an operator)
        }
        // A user's access token (it names its family) stops being active when the user is removed.
        if claims[Grant.familyClaim] != nil, let users, let subject = claims["sub"]?.stringValue {
            let all = try users()
            // Tokens minted before users had a sub name the user; a namesake added later is someone else.
            let issued = Date(timeIntervalSince1970: TimeInterval(claims["iat"]?.numberValue?.int64Value ?? 0))
            guard all.withSubject(subject) != nil || all.named(subject).map({ $0.created <= issued }) == true else { return inactive }
        }
        var object = JSONObject(["active": .bool(true), "token_type": .string("Bearer")])
        for name in ["scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "auth_time"] {
            if let value = claims[name] { object[name] = value }
        }
        return object
    }

    /// A store that refuses work (after a failed write, or closing) cannot say whether a token is live:
    /// that is `temporarily_unavailable`, as at the token endpoint, never `{"active": false}` (issue 18, item 20).
    /// Any other failure to read it counts as not active.
    private func readingStore<T>(_ read: () async throws -> T?) async throws -> T? {
        do {
            return try await read()
        } catch let error as RefreshTokenStoreError where error.code == .unavailable {
            throw OAuthError(.temporarilyUnavailable, "the token service cannot read refresh tokens right now", log: error.message)
        } catch {
            return nil
        }
    }

    private func verifiedAccessToken(_ token: String) -> JSONObject? {
        guard let parsed = try? UnverifiedJWS(parsing: token), parsed.header.type?.lowercased() == "at+jwt",
            let keySet = keys.current.verificationKeys, let claims = try? parsed.verified(using: keySet).payloadObject(),
            claims["iss"]?.stringValue.sameBytes(as: issuer) == true, case .number(let exp)? = claims["exp"], let expiry = exp.int64Value,
            expiry > Int64(clock.now().timeIntervalSince1970)
        else { return nil }
        return claims
    }

    private func seconds(_ date: Date) -> JSONValue { .number(JSONNumber(Int64(date.timeIntervalSince1970.rounded(.down)))) }
}
