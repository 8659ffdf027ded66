/// What Tessera accepts as key material for each algorithm (RFC 7518 §3, RFC 8725 §3.5).
enum KeyPolicy {
    static let minimumRSABits = 2048
    /// Bounds the cost of one verification; no deployed JWS key is larger.
    static let maximumRSABits = 16384

    /// Checks that `key` can carry `algorithm` and is strong enough.
    static func check(_ key: PKey, for algorithm: JWSAlgorithm) throws {
        switch (key.kind, algorithm.family) {
        case (.rsa(let bits), .rsaPKCS1), (.rsa(let bits), .rsaPSS):
            guard bits >= minimumRSABits else {
                throw JOSEError(.weakKey, "RSA key of \(bits) bits: at least \(minimumRSABits) are required (RFC 7518 §3.3)")
            }
            guard bits <= maximumRSABits else { throw JOSEError(.invalidKey, "RSA key of \(bits) bits is larger than supported") }
            let exponent = try key.publicExponent()
            guard exponent.count <= 8, let last = exponent.last, last & 1 == 1,
                exponent.count > 1 || last >= 3
            else {
                throw JOSEError(.weakKey, "RSA public exponent must be odd, at least 3 and at most 64 bits")
            }
            if try key.hasROCAFingerprint() {
                throw JOSEError(.weakKey, "RSA modulus has the ROCA fingerprint (CVE-2017-15361): the key is factorable")
            }
        case (.ec(let curve), .ecdsa):
            guard curve == algorithm.curve?.name else {
                throw JOSEError(.invalidKey, "\(algorithm) needs curve \(algorithm.curve?.name ?? "?"), the key is on \(curve)")
            }
        case (.ed25519, .eddsa):
            break
        default:
            throw JOSEError(.invalidKey, "the key's type cannot be used with \(algorithm)")
        }
    }

    static func checkHMACSecret(_ secret: [UInt8], for algorithm: JWSAlgorithm) throws {
        guard algorithm.family == .hmac else { throw JOSEError(.invalidKey, "a symmetric key can only be used with HS*") }
        // RFC 7518 §3.2: "A key of the same size as the hash output … or larger MUST be used".
        // Tessera refuses short secrets for verification as well, so a weak secret is caught at load time.
        guard secret.count >= algorithm.digestSize else {
            throw JOSEError(.weakKey, "\(algorithm) secret of \(secret.count) bytes: at least \(algorithm.digestSize) are required (RFC 7518 §3.2)")
        }
    }

    /// Chooses the one algorithm a JWK is bound to: the caller's, the JWK's `alg`, and they must agree.
    /// The token never chooses (RFC 8725 §3.1).
    static func algorithm(for jwk: JWK, requested: JWSAlgorithm?) throws -> JWSAlgorithm {
        var declared: JWSAlgorithm?
        if let name = jwk.algorithm {
            guard let algorithm = JWSAlgorithm(name: name) else {
                throw JOSEError(.unsupportedAlgorithm, "JWK \"alg\" \(name.prefix(16)) is not a JWS algorithm Tessera implements")
            }
            declared = algorithm
        }
        switch (requested, declared) {
        case (let requested?, let declared?) where requested != declared:
            throw JOSEError(.algorithmMismatch, "JWK is for \(declared), not \(requested)")
        case (let requested?, _): return requested
        case (nil, let declared?): return declared
        case (nil, nil): throw JOSEError(.missingAlgorithm, "JWK has no \"alg\" and no algorithm was configured for it")
        }
    }

    /// Checks `use` / `key_ops` against the operation the key is wanted for (RFC 7517 §4.2, §4.3).
    static func checkUsage(_ jwk: JWK, operation: String) throws {
        if let use = jwk.use, use != "sig" {
            throw JOSEError(.keyUsageMismatch, "JWK \"use\" is \(use.prefix(16)), not sig")
        }
        if let operations = jwk.keyOperations, !operations.contains(operation) {
            throw JOSEError(.keyUsageMismatch, "JWK \"key_ops\" does not include \(operation)")
        }
    }

    /// Reads the key material of a JWK for `algorithm` (public part, or private too when asked).
    static func material(from jwk: JWK, algorithm: JWSAlgorithm, includePrivate: Bool) throws -> KeyMaterial {
        switch (jwk.keyType, algorithm.family) {
        case ("oct", .hmac):
            let secret = try jwk.requiredBytes("k")
            try checkHMACSecret(secret, for: algorithm)
            return .hmac(try HMACKey(secret: secret, algorithm: algorithm))
        case ("RSA", .rsaPKCS1), ("RSA", .rsaPSS):
            let n = try jwk.requiredBytes("n")
            let e = try jwk.requiredBytes("e")
            // RFC 7518 §6.3.1.1: n and e use the minimum number of octets.
            guard n.first != 0, e.first != 0, !e.isEmpty else {
                throw JOSEError(.invalidKey, "RSA \"n\" and \"e\" must not have leading zero octets")
            }
            guard jwk.members["oth"] == nil else { throw JOSEError(.invalidKey, "multi-prime RSA keys (\"oth\") are not supported") }
            var parts: PKey.RSAPrivateParts?
            if includePrivate {
                let d = try jwk.requiredBytes("d")
                let crtNames = ["p", "q", "dp", "dq", "qi"]
                let crt = try crtNames.map { try jwk.bytes($0) }
                // RFC 7518 §6.3.2: the CRT members come all together or not at all.
                if crt.allSatisfy({ $0 != nil }) {
                    parts = .init(d: d, crt: (crt[0]!, crt[1]!, crt[2]!, crt[3]!, crt[4]!))
                } else if crt.allSatisfy({ $0 == nil }) {
                    parts = .init(d: d, crt: nil)
                } else {
                    throw JOSEError(.invalidKey, "RSA private JWK has only some of p, q, dp, dq, qi")
                }
            }
            let key = try PKey.rsa(n: n, e: e, privateParts: parts)
            try check(key, for: algorithm)
            if includePrivate { try checkRSAPrivate(key, algorithm) }
            return .asymmetric(key)
        case ("EC", .ecdsa):
            guard let curve = algorithm.curve else { throw JOSEError(.invalidKey, "no curve for \(algorithm)") }
            guard jwk.curve == curve.name else {
                throw JOSEError(.invalidKey, "\(algorithm) needs \"crv\" \(curve.name), the JWK has \(jwk.curve?.prefix(16) ?? "none")")
            }
            let x = try jwk.requiredBytes("x")
            let y = try jwk.requiredBytes("y")
            let d = includePrivate ? try jwk.requiredBytes("d") : nil
            // RFC 7518 §6.2.1.2–6.2.2.1: coordinates and d have exactly the curve's size.
            guard x.count == curve.size, y.count == curve.size, d == nil || d!.count == curve.size else {
                throw JOSEError(.invalidKey, "EC coordinates and \"d\" must be exactly \(curve.size) bytes for \(curve.name)")
            }
            let key = try PKey.ec(curve: curve.name, x: x, y: y, d: d)
            try check(key, for: algorithm)
            return .asymmetric(key)
        case ("OKP", .eddsa):
            guard jwk.curve == "Ed25519" else {
                throw JOSEError(.invalidKey, "OKP curve \(jwk.curve?.prefix(16) ?? "none") is not supported: only Ed25519")
            }
            let x = try jwk.requiredBytes("x")
            let d = includePrivate ? try jwk.requiredBytes("d") : nil
            guard x.count == 32, d == nil || d!.count == 32 else {
                throw JOSEError(.invalidKey, "Ed25519 \"x\" and \"d\" must be 32 bytes")
            }
            return .asymmetric(try PKey.ed25519(x: x, d: d))
        default:
            throw JOSEError(.invalidKey, "a JWK of kty \(jwk.keyType.prefix(16)) cannot be used with \(algorithm)")
        }
    }

    /// Checks an RSA private key's parts against each other. libcrypto reads inconsistent parts
    /// without complaint, and its CRT fault check then silently falls back to the slow exponent: the
    /// pairwise check catches CRT values that do not belong to n (p·q = n, d·e ≡ 1, dp, dq, qi), and
    /// signing a fixed message catches a `d` that does not (a JWK may give `d` alone).
    static func checkRSAPrivate(_ key: PKey, _ algorithm: JWSAlgorithm) throws {
        if key.hasRSAFactors { try key.check(private: true) }
        let message: [UInt8] = Array("tessera key self-test".utf8)
        let ok = try message.withUnsafeBytes { data in
            let signature = try key.sign(data, algorithm: algorithm)
            return signature.withUnsafeBytes { key.isValidSignature($0, for: data, algorithm: algorithm) }
        }
        guard ok else { throw JOSEError(.invalidKey, "RSA private key does not match its public key") }
    }

    /// The JWK of a key: `kty`, `kid`, `use`, `alg` and the key members; private members only when asked.
    static func jwk(for material: KeyMaterial, algorithm: JWSAlgorithm, keyID: String?, includePrivate: Bool) throws -> JWK {
        var object = JSONObject()
        switch material {
        case .hmac(let key):
            precondition(includePrivate, "an HMAC key has no public JWK")
            object["kty"] = .string("oct")
            if let keyID { object["kid"] = .string(keyID) }
            object["use"] = .string("sig")
            object["alg"] = .string(algorithm.name)
            object["k"] = .string(Base64URL.encode(key.secret))
        case .asymmetric(let key):
            let exported = try key.jwkMembers(includePrivate: includePrivate)
            object["kty"] = .string(exported.kty)
            if let keyID { object["kid"] = .string(keyID) }
            object["use"] = .string("sig")
            object["alg"] = .string(algorithm.name)
            if let curve = exported.crv { object["crv"] = .string(curve) }
            for (name, bytes) in exported.members { object[name] = .string(Base64URL.encode(bytes)) }
        }
        return try JWK(members: object)
    }

    /// The RFC 7638 thumbprint of an asymmetric key, from its canonical public members.
    static func thumbprint(of key: PKey) throws -> String {
        let exported = try key.jwkMembers(includePrivate: false)
        var object = JSONObject()
        object["kty"] = .string(exported.kty)
        if let curve = exported.crv { object["crv"] = .string(curve) }
        for (name, bytes) in exported.members { object[name] = .string(Base64URL.encode(bytes)) }
        return try JWK(members: object).thumbprint()
    }
}
