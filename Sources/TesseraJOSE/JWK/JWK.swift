/// A JSON Web Key (RFC 7517) as data: its members, read strictly, written compactly.
///
/// A `JWK` is only a description. Turning one into a usable key (`SigningKey(jwk:)`,
/// `VerificationKey(jwk:)`) checks the key material and binds it to exactly one algorithm.
public struct JWK: Sendable, Equatable, CustomStringConvertible {
    /// Members that carry secret material (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
    public static let privateMemberNames: Set<String> = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]

    public let members: JSONObject

    /// Wraps JWK members, checking the types of the members every key has (RFC 7517 §4).
    public init(members: JSONObject) throws {
        guard try members.string("kty", or: .invalidKey) != nil else {
            throw JOSEError(.invalidKey, "JWK has no \"kty\"")
        }
        for name in ["kid", "alg", "use", "crv"] { _ = try members.string(name, or: .invalidKey) }
        if let operations = members["key_ops"] {
            guard let array = operations.arrayValue, array.allSatisfy({ $0.stringValue != nil }) else {
                throw JOSEError(.invalidKey, "JWK \"key_ops\" must be an array of strings")
            }
            let names = array.compactMap(\.stringValue)
            guard Set(names).count == names.count else { throw JOSEError(.invalidKey, "JWK \"key_ops\" repeats a value") }
        }
        // RFC 7517 §4.3: when both are present, "use" and "key_ops" must agree.
        if let use = members["use"]?.stringValue, let operations = members["key_ops"]?.arrayValue?.compactMap(\.stringValue) {
            let allowed: Set<String> =
                use == "sig"
                ? ["sign", "verify"]
                : use == "enc" ? ["encrypt", "decrypt", "wrapKey", "unwrapKey", "deriveKey", "deriveBits"] : []
            guard Set(operations).isSubset(of: allowed) else {
                throw JOSEError(.invalidKey, "JWK \"use\" and \"key_ops\" disagree")
            }
        }
        self.members = members
    }

    /// Parses a JWK from JSON text (duplicate member names are rejected).
    public init(json: String) throws { try self.init(members: try JSONObject(parsing: json)) }

    public init<Bytes: Collection>(jsonBytes: Bytes) throws where Bytes.Element == UInt8 {
        try self.init(members: try JSONObject(parsing: jsonBytes))
    }

    public var keyType: String { members["kty"]?.stringValue ?? "" }
    public var keyID: String? { members["kid"]?.stringValue }
    /// The raw `alg` member (not interpreted: see `JWSAlgorithm(name:)`).
    public var algorithm: String? { members["alg"]?.stringValue }
    public var use: String? { members["use"]?.stringValue }
    public var keyOperations: [String]? { members["key_ops"]?.arrayValue?.compactMap(\.stringValue) }
    public var curve: String? { members["crv"]?.stringValue }

    /// True when the JWK carries secret material (a private key, or a symmetric key's `k`).
    public var containsPrivateMembers: Bool { members.keys.contains { Self.privateMemberNames.contains($0) } }

    /// The compact JSON text of this JWK.
    public var jsonString: String { members.jsonString }

    /// Names the key without its material, so a JWK can be logged.
    public var description: String { "JWK(kty: \(keyType), kid: \(keyID.map { String($0.prefix(64)) } ?? "-"))" }

    /// The RFC 7638 JWK thumbprint: SHA-256 over the required members in lexicographic order,
    /// without whitespace, base64url-encoded.
    public func thumbprint() throws -> String {
        let required: [String]
        switch keyType {
        case "RSA": required = ["e", "kty", "n"]
        case "EC": required = ["crv", "kty", "x", "y"]
        case "OKP": required = ["crv", "kty", "x"]
        case "oct": required = ["k", "kty"]
        default: throw JOSEError(.invalidKey, "no thumbprint is defined for kty \(keyType.prefix(16))")
        }
        var canonical = JSONObject()
        for name in required {
            guard let value = try members.string(name, or: .invalidKey) else {
                throw JOSEError(.invalidKey, "JWK lacks the member \"\(name)\" its thumbprint needs")
            }
            canonical[name] = .string(value)
        }
        return Base64URL.encode(Digest.sha256(canonical.jsonBytes))
    }

    /// The decoded bytes of a base64url member; `nil` when absent.
    func bytes(_ name: String) throws -> [UInt8]? {
        guard let text = try members.string(name, or: .invalidKey) else { return nil }
        do {
            return try Base64URL.decode(text)
        } catch {
            throw JOSEError(.invalidKey, "JWK member \"\(name)\" is not valid base64url")
        }
    }

    func requiredBytes(_ name: String) throws -> [UInt8] {
        guard let value = try bytes(name) else { throw JOSEError(.invalidKey, "JWK lacks the member \"\(name)\"") }
        return value
    }
}
