import Foundation
import TesseraJOSE

/// The registered clients: the content of `clients.json` in the data folder (format in `docs/clients.md`).
public struct ClientRegistry: Codable, Sendable, Equatable {
    public var version = 1
    public var clients: [Client]

    public init(clients: [Client] = []) { self.clients = clients }

    public func client(_ id: String) -> Client? { clients.first { $0.id == id } }

    public func validate() throws {
        guard version == 1 else { throw OAuthError(.invalidRequest, "clients.json version \(version) is not supported (this build reads 1)") }
        var seen = Set<String>()
        for client in clients {
            guard seen.insert(client.id).inserted else { throw OAuthError(.invalidRequest, "client_id \(client.id) appears twice") }
            try client.validate()
        }
    }
}

/// `clients.json` in the data folder: read whole (written by rename, so never half), changed under the
/// folder's `.clients.lock`, written 0600 with fsync, rename and folder fsync.
public struct ClientStore: Sendable {
    public let dataPath: String
    public static let fileName = "clients.json"
    private let document: JSONDocument<ClientRegistry>

    public init(dataPath: String) {
        self.dataPath = dataPath
        document = JSONDocument(folder: dataPath, name: Self.fileName, lockName: ".clients.lock", what: "the client registry",
                                empty: { ClientRegistry() })
    }

    /// The registry; empty when there is no file yet.
    public func read() throws -> ClientRegistry {
        let registry = try document.read()
        try registry.validate()
        return registry
    }

    /// Runs `body` under the lock and writes the registry back (validated) if it changed.
    public func update<T>(_ body: (inout ClientRegistry) throws -> T) throws -> T {
        try document.update { registry in
            let result = try body(&registry)
            try registry.validate()
            return result
        }
    }
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
        var id = formID, secret = formSecret
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
                throw OAuthError(.invalidClient, "client authentication failed", log: client == nil ? "unknown client" : "confidential client \(id) sent no secret")
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
