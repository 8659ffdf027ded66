/// A JWS signature algorithm Tessera implements (RFC 7518 §3, RFC 8037 §3.1).
///
/// There is no `none` value: an unsecured JWS cannot be expressed, so it cannot be accepted
/// (RFC 8725 §3.1). Values are static members of a struct rather than enum cases, so adding an
/// algorithm later does not break exhaustive switches in callers.
public struct JWSAlgorithm: Hashable, Sendable, CustomStringConvertible {
    /// The algorithm family: which kind of key can carry it.
    public enum Family: String, Sendable {
        case hmac, rsaPKCS1, rsaPSS, ecdsa, eddsa
    }

    enum Digest: Sendable { case sha256, sha384, sha512, none }

    /// The `alg` value Tessera writes.
    public let name: String
    public let family: Family
    let digest: Digest

    private init(_ name: String, _ family: Family, _ digest: Digest) {
        self.name = name
        self.family = family
        self.digest = digest
    }

    public static let hs256 = JWSAlgorithm("HS256", .hmac, .sha256)
    public static let hs384 = JWSAlgorithm("HS384", .hmac, .sha384)
    public static let hs512 = JWSAlgorithm("HS512", .hmac, .sha512)
    public static let rs256 = JWSAlgorithm("RS256", .rsaPKCS1, .sha256)
    public static let rs384 = JWSAlgorithm("RS384", .rsaPKCS1, .sha384)
    public static let rs512 = JWSAlgorithm("RS512", .rsaPKCS1, .sha512)
    public static let ps256 = JWSAlgorithm("PS256", .rsaPSS, .sha256)
    public static let ps384 = JWSAlgorithm("PS384", .rsaPSS, .sha384)
    public static let ps512 = JWSAlgorithm("PS512", .rsaPSS, .sha512)
    public static let es256 = JWSAlgorithm("ES256", .ecdsa, .sha256)
    public static let es384 = JWSAlgorithm("ES384", .ecdsa, .sha384)
    public static let es512 = JWSAlgorithm("ES512", .ecdsa, .sha512)
    /// Ed25519 signatures (RFC 8037). Written as `EdDSA`, the name deployed verifiers know;
    /// the fully-specified `Ed25519` of RFC 9864 is read as an alias of it.
    public static let eddsa = JWSAlgorithm("EdDSA", .eddsa, .none)

    /// Every algorithm Tessera implements.
    public static let all: [JWSAlgorithm] = [
        .hs256, .hs384, .hs512, .rs256, .rs384, .rs512, .ps256, .ps384, .ps512, .es256, .es384, .es512, .eddsa,
    ]

    /// The asymmetric algorithms: the default allow-list of a verifier.
    public static let asymmetric: [JWSAlgorithm] = all.filter { $0.family != .hmac }

    /// Reads an `alg` value. Case-sensitive (RFC 7515 §4.1.1); `none` and unknown names give `nil`.
    /// `Ed25519` (RFC 9864) is accepted as an alias of `EdDSA`.
    public init?(name: String) {
        switch name {
        case "HS256": self = .hs256
        case "HS384": self = .hs384
        case "HS512": self = .hs512
        case "RS256": self = .rs256
        case "RS384": self = .rs384
        case "RS512": self = .rs512
        case "PS256": self = .ps256
        case "PS384": self = .ps384
        case "PS512": self = .ps512
        case "ES256": self = .es256
        case "ES384": self = .es384
        case "ES512": self = .es512
        case "EdDSA", "Ed25519": self = .eddsa
        default: return nil
        }
    }

    public var description: String { name }

    /// Whether the algorithm uses a shared secret (HS*).
    public var isSymmetric: Bool { family == .hmac }

    /// The digest output size in bytes: the minimum HMAC key size (RFC 7518 §3.2).
    var digestSize: Int {
        switch digest {
        case .sha256: return 32
        case .sha384: return 48
        case .sha512: return 64
        case .none: return 0
        }
    }

    /// For ES*: the curve name in JWK (`crv`) and the byte length of each of r, s, x, y and d.
    var curve: (name: String, size: Int)? {
        switch self {
        case .es256: return ("P-256", 32)
        case .es384: return ("P-384", 48)
        case .es512: return ("P-521", 66)
        default: return nil
        }
    }

    public static func == (lhs: JWSAlgorithm, rhs: JWSAlgorithm) -> Bool { lhs.name == rhs.name }
    public func hash(into hasher: inout Hasher) { hasher.combine(name) }
}

extension JWSAlgorithm {
    /// OpenID Connect Core §3.1.3.6 (`at_hash`) and §3.3.2.11 (`c_hash`): the left half of the hash of
    /// `value`'s ASCII bytes, with the hash of this algorithm's signature (SHA-256 for RS256, ES256, PS256
    /// …), base64url. EdDSA has no hash of its own in its name; Ed25519 signs with SHA-512, which is what
    /// the OpenID Foundation's errata use for it.
    public func leftHalfHash(of value: String) -> String {
        let bytes = Array(value.utf8)
        let digest: [UInt8]
        switch self.digest {
        case .sha256: digest = TesseraJOSE.Digest.sha256(bytes)
        case .sha384: digest = TesseraJOSE.Digest.sha384(bytes)
        case .sha512, .none: digest = TesseraJOSE.Digest.sha512(bytes)
        }
        return Base64URL.encode(digest.prefix(digest.count / 2))
    }
}
