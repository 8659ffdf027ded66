import Foundation
import TesseraJOSE

/// Client authentication shared by the token, revocation and introspection endpoints.
func authenticate(_ request: TokenRequest, _ clients: @Sendable () throws -> ClientRegistry) throws -> Client {
    let registry: ClientRegistry
    do { registry = try clients() } catch {
        throw OAuthError(.temporarilyUnavailable, "the client registry cannot be read", log: "\(error)")
    }
    return try ClientAuthenticator(registry: registry).authenticate(
        basic: request.basicCredentials, clientID: request["client_id"], clientSecret: request["client_secret"])
}

/// The user name and password of an HTTP Basic `Authorization` header, each form-decoded (RFC 6749 §2.3.1).
public struct BasicCredentials: Sendable, Equatable {
    public let id: String
    public let secret: String
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
        try authenticate(
            basic: authorization.map(Self.decodeBasic), clientID: formID, clientSecret: formSecret)
    }

    /// The same, from an `Authorization` header already decoded (`TokenRequest.basicCredentials`).
    public func authenticate(
        basic: Result<BasicCredentials, OAuthError>?, clientID formID: String?, clientSecret formSecret: String?
    ) throws -> Client {
        var id = formID
        var secret = formSecret
        if let basic {
            guard formSecret == nil else {
                // RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in each request."
                throw OAuthError(.invalidRequest, "use one client authentication method: HTTP Basic or client_secret in the body, not both")
            }
            let credentials = try basic.get()
            // Byte for byte: two spellings of one Unicode string are two client ids.
            if let formID, !formID.sameBytes(as: credentials.id) {
                throw OAuthError(.invalidRequest, "client_id in the body differs from the one in the Authorization header")
            }
            id = credentials.id
            secret = credentials.secret
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
        claimedClientID(basic: authorization.map(decodeBasic), clientID: clientID)
    }

    /// The same, from an `Authorization` header already decoded.
    public static func claimedClientID(basic: Result<BasicCredentials, OAuthError>?, clientID: String?) -> String? {
        if case .success(let credentials)? = basic { return String(credentials.id.prefix(255)) }
        return clientID.map { String($0.prefix(255)) }
    }

    /// RFC 6749 §2.3.1: `Basic` and base64 of `urlencode(id) ":" urlencode(secret)`. Decoded byte by byte:
    /// the scheme's name in any case, the standard base64 alphabet with its padding, no other character.
    static func basicCredentials(header: String) throws -> BasicCredentials { try decodeBasic(header).get() }

    /// `basicCredentials` as a result: what `TokenRequest` keeps.
    static func decodeBasic(_ header: String) -> Result<BasicCredentials, OAuthError> {
        var header = header
        return header.withUTF8 { bytes in Result { () throws(OAuthError) in try decodeBasic(bytes) } }
    }

    private static func decodeBasic(_ bytes: UnsafeBufferPointer<UInt8>) throws(OAuthError) -> BasicCredentials {
        let malformed = OAuthError(.invalidClient, "client authentication failed", log: "malformed Basic credentials")
        guard let space = bytes.firstIndex(of: 0x20), space == 5,
            zip(bytes[0..<5], "basic".utf8).allSatisfy({ $0 | 0x20 == $1 })
        else {
            throw OAuthError(.invalidClient, "client authentication failed", log: "Authorization header with a scheme other than Basic")
        }
        var (start, end) = (space + 1, bytes.count)
        while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
        while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
        guard end - start <= 4 * maximumCredentialLength, (end - start) % 4 == 0 else { throw malformed }
        // Standard base64 as base64url (which `Base64URL` decodes strictly): `+` and `/` swapped for `-`
        // and `_`, the padding dropped; a `-`, `_` or `=` elsewhere is not base64.
        var padding = 0
        while padding < 2, end - padding > start, bytes[end - 1 - padding] == 0x3D { padding += 1 }
        var encoded = [UInt8](bytes[start..<(end - padding)])
        for index in encoded.indices {
            switch encoded[index] {
            case 0x2B: encoded[index] = 0x2D
            case 0x2F: encoded[index] = 0x5F
            case 0x2D, 0x5F, 0x3D: throw malformed
            default: break
            }
        }
        guard let decoded = try? Base64URL.decode(encoded), let colon = decoded.firstIndex(of: 0x3A),
            let id = formDecoded(decoded[..<colon]), let secret = formDecoded(decoded[(colon + 1)...])
        else { throw malformed }
        return BasicCredentials(id: id, secret: secret)
    }

    /// application/x-www-form-urlencoded decoding of one value: `+` is a space, `%XX` a byte; nil if malformed
    /// (a `%` without two hex digits, or bytes that are not UTF-8).
    public static func formDecoded(_ value: String) -> String? { formDecoded(value.utf8) }

    /// The same over the value's bytes.
    public static func formDecoded<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String? {
        guard bytes.contains(where: { $0 == 0x2B || $0 == 0x25 }) else { return String(validating: bytes, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var iterator = bytes.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case 0x2B: out.append(0x20)
            case 0x25:
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
                out.append(high << 4 | low)
            default: out.append(byte)
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: byte - 0x30
        case 0x41...0x46: byte - 0x41 + 10
        case 0x61...0x66: byte - 0x61 + 10
        default: nil
        }
    }
}
