import Foundation
import TesseraJOSE

/// Client authentication shared by the token, revocation and introspection endpoints.
func authenticate(_ request: TokenRequest, _ clients: @Sendable () throws -> ClientRegistry) throws -> Client {
    let registry: ClientRegistry
    do { registry = try clients() } catch {
        throw OAuthError(.temporarilyUnavailable, "the client registry cannot be read", log: "\(error)")
    }
    return try ClientAuthenticator(registry: registry).authenticate(
        authorization: request.authorization, clientID: request["client_id"], clientSecret: request["client_secret"])
}

/// Client authentication at the token, revocation and introspection endpoints (RFC 6749 §2.3):
/// `client_secret_basic`, `client_secret_post`, or `none` for public clients. Exactly one method per
/// request; every failure is `invalid_client` with the same description, whatever went wrong.
public struct ClientAuthenticator: Sendable {
    public let registry: ClientRegistry

    public init(registry: ClientRegistry) { self.registry = registry }

    static let maximumCredentialLength = 1_024

    /// Authenticates from the `Authorization` header (if any) and the form's `client_id` / `client_secret`.
    public func authenticate(authorization: String?, clientID formID: String?, clientSecret formSecret: String?) throws -> Client {
        var id = formID
        var secret = formSecret
        if let authorization {
            guard formSecret == nil else {
                // RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in each request."
                throw OAuthError(.invalidRequest, "use one client authentication method: HTTP Basic or client_secret in the body, not both")
            }
            let (basicID, basicSecret) = try Self.basicCredentials(header: authorization)
            if let formID, formID != basicID {
                throw OAuthError(.invalidRequest, "client_id in the body differs from the one in the Authorization header")
            }
            id = basicID
            secret = basicSecret
        }
        guard let id, !id.isEmpty else { throw OAuthError(.invalidClient, "client authentication failed", log: "no client_id") }
        guard id.utf8.count <= Self.maximumCredentialLength, (secret?.utf8.count ?? 0) <= Self.maximumCredentialLength else {
            throw OAuthError(.invalidClient, "client authentication failed", log: "client credentials longer than 1 KiB")
        }
        let client = registry.client(id)
        guard let secret else {
            guard let client, client.type == .public else {
                throw OAuthError(
                    .invalidClient, "client authentication failed", log: client == nil ? "unknown client" : "confidential client \(id) sent no secret"
                )
            }
            return client
        }
        // Compare digests in constant time; an unknown client is compared against a dummy digest so its
        // timing does not tell which client IDs exist.
        let presented = Digest.sha256(Array(secret.utf8))
        let stored = client?.secretDigest.flatMap { try? Base64URL.decode($0) } ?? [UInt8](repeating: 0, count: 32)
        let matches = ConstantTime.equals(presented, stored)
        guard let client, client.type == .confidential, matches else {
            let reason = client == nil ? "unknown client" : client!.type == .public ? "public client \(id) sent a secret" : "wrong secret for \(id)"
            throw OAuthError(.invalidClient, "client authentication failed", log: reason)
        }
        return client
    }

    /// The client a request claims to be (Basic user name, or the form's client_id), without checking it:
    /// for throttling and logs.
    public static func claimedClientID(authorization: String?, clientID: String?) -> String? {
        if let authorization, let (id, _) = try? basicCredentials(header: authorization) { return String(id.prefix(255)) }
        return clientID.map { String($0.prefix(255)) }
    }

    /// RFC 6749 §2.3.1: `Basic` and base64 of `urlencode(id) ":" urlencode(secret)`.
    static func basicCredentials(header: String) throws -> (String, String) {
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic" else {
            throw OAuthError(.invalidClient, "client authentication failed", log: "Authorization header with a scheme other than Basic")
        }
        let encoded = String(parts[1])
        guard encoded.utf8.count <= 4 * maximumCredentialLength,
            let data = Data(base64Encoded: encoded.trimmingCharacters(in: .whitespaces)),
            let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":"),
            let id = formDecoded(String(text[..<colon])), let secret = formDecoded(String(text[text.index(after: colon)...]))
        else {
            throw OAuthError(.invalidClient, "client authentication failed", log: "malformed Basic credentials")
        }
        return (id, secret)
    }

    /// application/x-www-form-urlencoded decoding of one value: `+` is a space, `%XX` a byte; nil if malformed.
    public static func formDecoded(_ value: String) -> String? {
        value.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }
}
