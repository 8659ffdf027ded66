/// A public key (or HMAC secret) that checks signatures for exactly one JWS algorithm.
public struct VerificationKey: Sendable {
    public let algorithm: JWSAlgorithm
    public let keyID: String?
    let material: KeyMaterial

    init(algorithm: JWSAlgorithm, keyID: String?, material: KeyMaterial) {
        (self.algorithm, self.keyID, self.material) = (algorithm, keyID, material)
    }

    /// Reads a public JWK, or an `oct` JWK for HS*. `algorithm` must agree with the JWK's `alg` when
    /// both are present; when the JWK has none, `algorithm` is required. A JWK with private members is
    /// refused: a verifier must never be handed a private key.
    public init(jwk: JWK, algorithm: JWSAlgorithm? = nil) throws {
        try KeyPolicy.checkUsage(jwk, operation: "verify")
        let algorithm = try KeyPolicy.algorithm(for: jwk, requested: algorithm)
        if jwk.keyType != "oct", jwk.containsPrivateMembers {
            throw JOSEError(.invalidKey, "JWK carries private members; verification needs the public key only")
        }
        self.init(
            algorithm: algorithm, keyID: jwk.keyID,
            material: try KeyPolicy.material(from: jwk, algorithm: algorithm, includePrivate: false))
    }

    /// Reads a SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`) for `algorithm`.
    public init(pemRepresentation pem: String, algorithm: JWSAlgorithm, keyID: String? = nil) throws {
        guard algorithm.family != .hmac else { throw JOSEError(.invalidKey, "HMAC secrets have no PEM form") }
        let key = try PKey(spkiDER: try PEM.decode(pem, label: PEM.publicKeyLabel))
        try KeyPolicy.check(key, for: algorithm)
        self.init(algorithm: algorithm, keyID: keyID, material: .asymmetric(key))
    }

    /// An HMAC verification key. Secrets shorter than the hash output are refused (RFC 7518 §3.2).
    public init(secret: [UInt8], algorithm: JWSAlgorithm, keyID: String? = nil) throws {
        try KeyPolicy.checkHMACSecret(secret, for: algorithm)
        self.init(algorithm: algorithm, keyID: keyID, material: .hmac(try HMACKey(secret: secret, algorithm: algorithm)))
    }

    /// The SubjectPublicKeyInfo PEM. HMAC secrets have none.
    public func pemRepresentation() throws -> String {
        guard case .asymmetric(let key) = material else {
            throw JOSEError(.operationNotPermitted, "HMAC secrets have no PEM form")
        }
        return PEM.encode(der: try key.spkiDER(), label: PEM.publicKeyLabel)
    }

    /// The public JWK (never a private member); `nil` for HMAC keys, which have no public part.
    public func publicJWK() throws -> JWK? { try material.publicJWK(algorithm: algorithm, keyID: keyID) }

    /// The RFC 7638 thumbprint of the public key; `nil` for HMAC keys.
    public func thumbprint() throws -> String? { try material.thumbprint() }

    public var isSymmetric: Bool { algorithm.isSymmetric }

    /// Whether `signature` is this key's valid JWS signature of `data`. Malformed signatures are invalid.
    public func isValidSignature<S: Collection, D: Collection>(_ signature: S, for data: D) -> Bool
    where S.Element == UInt8, D.Element == UInt8 {
        let signature = Array(signature)
        let data = Array(data)
        return signature.withUnsafeBytes { sig in data.withUnsafeBytes { isValidSignature(sig, for: $0) } }
    }

    func isValidSignature(_ signature: UnsafeRawBufferPointer, for data: UnsafeRawBufferPointer) -> Bool {
        material.isValidSignature(signature, for: data, algorithm: algorithm)
    }
}
