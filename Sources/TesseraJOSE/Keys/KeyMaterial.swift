/// The material behind a signing or verification key: an HMAC secret or a libcrypto key.
enum KeyMaterial: Sendable {
    case hmac(HMACKey)
    case asymmetric(PKey)

    func signature(for data: UnsafeRawBufferPointer, algorithm: JWSAlgorithm) throws -> [UInt8] {
        switch self {
        case .hmac(let key): return try key.mac(data)
        case .asymmetric(let key): return try key.sign(data, algorithm: algorithm)
        }
    }

    /// The public JWK; `nil` for an HMAC secret, whose JWK would be the secret itself.
    func publicJWK(algorithm: JWSAlgorithm, keyID: String?) throws -> JWK? {
        guard case .asymmetric = self else { return nil }
        return try KeyPolicy.jwk(for: self, algorithm: algorithm, keyID: keyID, includePrivate: false)
    }

    /// The RFC 7638 thumbprint of the public key; `nil` for an HMAC secret.
    func thumbprint() throws -> String? {
        guard case .asymmetric(let key) = self else { return nil }
        return try KeyPolicy.thumbprint(of: key)
    }

    func isValidSignature(
        _ signature: UnsafeRawBufferPointer, for data: UnsafeRawBufferPointer,
        algorithm: JWSAlgorithm
    ) -> Bool {
        switch self {
        case .hmac(let key): return key.isValid(signature, for: data)
        case .asymmetric(let key): return key.isValidSignature(signature, for: data, algorithm: algorithm)
        }
    }
}
