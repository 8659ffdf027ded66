/// A private key (or HMAC secret) bound to exactly one JWS algorithm.
///
/// The algorithm is part of the key: signing never takes an algorithm from anywhere else.
/// `keyID` is the `kid` written into tokens; for asymmetric keys it defaults to the RFC 7638
/// thumbprint of the public key.
public struct SigningKey: Sendable {
    public let algorithm: JWSAlgorithm
    public let keyID: String?
    let material: KeyMaterial

    init(algorithm: JWSAlgorithm, keyID: String?, material: KeyMaterial) {
        (self.algorithm, self.keyID, self.material) = (algorithm, keyID, material)
    }

    /// Generates a new key for `algorithm`. RSA keys have `rsaBits` bits (2048 at least); HMAC secrets
    /// are 64 random bytes, whatever the hash size, and get a random `kid` (a thumbprint of a secret
    /// would publish a hash of it).
    public static func generate(_ algorithm: JWSAlgorithm, rsaBits: Int = 2048, keyID: String? = nil) throws -> SigningKey {
        if algorithm.family == .hmac {
            let secret = try SecureRandom.bytes(count: 64)
            let id = try keyID ?? Base64URL.encode(SecureRandom.bytes(count: 16))
            return try SigningKey(secret: secret, algorithm: algorithm, keyID: id)
        }
        if algorithm.family == .rsaPKCS1 || algorithm.family == .rsaPSS {
            guard rsaBits >= KeyPolicy.minimumRSABits else {
                throw JOSEError(.weakKey, "RSA keys need at least \(KeyPolicy.minimumRSABits) bits, \(rsaBits) were asked for")
            }
            guard rsaBits <= KeyPolicy.maximumRSABits else { throw JOSEError(.invalidKey, "RSA key size \(rsaBits) is too large") }
        }
        let key = try PKey.generate(for: algorithm, rsaBits: rsaBits)
        try KeyPolicy.check(key, for: algorithm)
        return SigningKey(algorithm: algorithm, keyID: try keyID ?? KeyPolicy.thumbprint(of: key), material: .asymmetric(key))
    }

    /// An HMAC signing key. Secrets shorter than the hash output are refused (RFC 7518 §3.2).
    public init(secret: [UInt8], algorithm: JWSAlgorithm, keyID: String? = nil) throws {
        try KeyPolicy.checkHMACSecret(secret, for: algorithm)
        self.init(algorithm: algorithm, keyID: keyID, material: .hmac(try HMACKey(secret: secret, algorithm: algorithm)))
    }

    /// Reads a private JWK. `algorithm` must agree with the JWK's `alg` when both are present.
    public init(jwk: JWK, algorithm: JWSAlgorithm? = nil) throws {
        try KeyPolicy.checkUsage(jwk, operation: "sign")
        let algorithm = try KeyPolicy.algorithm(for: jwk, requested: algorithm)
        guard jwk.keyType == "oct" || jwk.members["d"] != nil else {
            throw JOSEError(.invalidKey, "a signing key needs the private member \"d\"")
        }
        let material = try KeyPolicy.material(from: jwk, algorithm: algorithm, includePrivate: true)
        var keyID = jwk.keyID
        if keyID == nil, case .asymmetric(let key) = material { keyID = try KeyPolicy.thumbprint(of: key) }
        self.init(algorithm: algorithm, keyID: keyID, material: material)
    }

    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`) for `algorithm`.
    public init(pemRepresentation pem: String, algorithm: JWSAlgorithm, keyID: String? = nil) throws {
        guard algorithm.family != .hmac else { throw JOSEError(.invalidKey, "HMAC secrets have no PEM form") }
        let key = try PKey(pkcs8DER: try PEM.decode(pem, label: PEM.privateKeyLabel))
        try KeyPolicy.check(key, for: algorithm)
        if case .rsa = key.kind { try KeyPolicy.checkRSAPrivate(key, algorithm) }
        self.init(algorithm: algorithm, keyID: try keyID ?? KeyPolicy.thumbprint(of: key), material: .asymmetric(key))
    }

    /// The PKCS#8 PEM of the private key. HMAC secrets have none.
    public func pemRepresentation() throws -> String {
        guard case .asymmetric(let key) = material else {
            throw JOSEError(.operationNotPermitted, "HMAC secrets have no PEM form")
        }
        return PEM.encode(der: try key.pkcs8DER(), label: PEM.privateKeyLabel)
    }

    /// The private JWK, with `kid`, `use: sig` and `alg`. Secret: store it like the key itself.
    public func privateJWK() throws -> JWK {
        try KeyPolicy.jwk(for: material, algorithm: algorithm, keyID: keyID, includePrivate: true)
    }

    /// The public JWK (never a private member); `nil` for HMAC keys, which have no public part.
    public func publicJWK() throws -> JWK? { try material.publicJWK(algorithm: algorithm, keyID: keyID) }

    /// The RFC 7638 thumbprint of the public key; `nil` for HMAC keys.
    public func thumbprint() throws -> String? { try material.thumbprint() }

    /// True for HMAC keys: every verifier then holds the signing secret.
    public var isSymmetric: Bool { algorithm.isSymmetric }

    /// The key that verifies this key's signatures (the public half, or the same HMAC secret).
    public func verificationKey() throws -> VerificationKey {
        switch material {
        case .hmac: return VerificationKey(algorithm: algorithm, keyID: keyID, material: material)
        case .asymmetric(let key):
            return VerificationKey(algorithm: algorithm, keyID: keyID, material: .asymmetric(try key.publicKey()))
        }
    }

    /// The JWS signature of `data` (r‖s for ECDSA).
    public func signature<Bytes: Collection>(for data: Bytes) throws -> [UInt8] where Bytes.Element == UInt8 {
        if let result = try data.withContiguousStorageIfAvailable({
            try material.signature(for: UnsafeRawBufferPointer($0), algorithm: algorithm)
        }) {
            return result
        }
        return try Array(data).withUnsafeBytes { try material.signature(for: $0, algorithm: algorithm) }
    }

    func signature(for data: UnsafeRawBufferPointer) throws -> [UInt8] {
        try material.signature(for: data, algorithm: algorithm)
    }
}

extension JWKSet {
    /// The public JWK Set of `keys`, as an issuer publishes it: HMAC keys are left out, and no
    /// member that carries secret material is ever written.
    public init(publicKeysOf keys: [SigningKey]) throws {
        self.init(keys: try keys.compactMap { try $0.publicJWK() })
    }
}
