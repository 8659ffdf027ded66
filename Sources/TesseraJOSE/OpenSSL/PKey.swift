internal import CTesseraCrypto
import Foundation

/// An asymmetric key held by libcrypto (`EVP_PKEY`), immutable once made.
///
/// `EVP_PKEY` is reference-counted and safe to share between threads for signing and
/// verification as long as each operation has its own `EVP_MD_CTX`, which is how it is used here.
final class PKey: @unchecked Sendable {
    enum Kind: Equatable, Sendable {
        case rsa(bits: Int)
        case ec(curve: String)  // "P-256", "P-384", "P-521"
        case ed25519
    }

    let pointer: OpaquePointer
    let kind: Kind
    let hasPrivateKey: Bool

    /// A digest-verify context initialised once for one algorithm, copied for each verification:
    /// `EVP_DigestVerifyInit` fetches the signature implementation and sets the key up on every call,
    /// which costs as much as parsing a whole token. Not used for Ed25519 (no streaming context).
    private let templateLock = NSLock()
    private var verifyTemplate: (algorithm: JWSAlgorithm, context: OpaquePointer)?

    private init(taking pointer: OpaquePointer, hasPrivateKey: Bool) throws {
        self.pointer = pointer
        self.hasPrivateKey = hasPrivateKey
        if EVP_PKEY_is_a(pointer, "RSA") == 1 {
            kind = .rsa(bits: Int(EVP_PKEY_get_bits(pointer)))
        } else if EVP_PKEY_is_a(pointer, "ED25519") == 1 {
            kind = .ed25519
        } else if EVP_PKEY_is_a(pointer, "EC") == 1 {
            var buffer = [CChar](repeating: 0, count: 64)
            var length = 0
            guard EVP_PKEY_get_utf8_string_param(pointer, "group", &buffer, buffer.count, &length) == 1 else {
                EVP_PKEY_free(pointer)
                throw cryptoError(.invalidKey, "EC key without a named curve")
            }
            let name = String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            switch name {
            case "prime256v1", "P-256", "secp256r1": kind = .ec(curve: "P-256")
            case "secp384r1", "P-384": kind = .ec(curve: "P-384")
            case "secp521r1", "P-521": kind = .ec(curve: "P-521")
            default:
                EVP_PKEY_free(pointer)
                throw JOSEError(.invalidKey, "EC curve \(name.prefix(32)) is not P-256, P-384 or P-521")
            }
        } else {
            EVP_PKEY_free(pointer)
            throw JOSEError(.invalidKey, "key type is not RSA, EC or Ed25519")
        }
    }

    deinit {
        if let template = verifyTemplate { EVP_MD_CTX_free(template.context) }
        EVP_PKEY_free(pointer)
    }

    /// A fresh verify context for `algorithm`, copied from the prepared one (made on first use).
    private func verifyContext(for algorithm: JWSAlgorithm) -> OpaquePointer? {
        templateLock.lock()
        defer { templateLock.unlock() }
        if verifyTemplate?.algorithm != algorithm {
            guard let template = EVP_MD_CTX_new() else { return nil }
            var keyContext: OpaquePointer?
            guard EVP_DigestVerifyInit(template, &keyContext, FetchedDigests.shared.md(for: algorithm.digest), nil, pointer) == 1,
                algorithm.family != .rsaPSS || (try? configurePSS(keyContext, algorithm)) != nil
            else {
                EVP_MD_CTX_free(template)
                return nil
            }
            if let old = verifyTemplate { EVP_MD_CTX_free(old.context) }
            verifyTemplate = (algorithm, template)
        }
        guard let copy = EVP_MD_CTX_new() else { return nil }
        guard EVP_MD_CTX_copy_ex(copy, verifyTemplate!.context) == 1 else {
            EVP_MD_CTX_free(copy)
            return nil
        }
        return copy
    }

    // MARK: Generation

    static func generate(for algorithm: JWSAlgorithm, rsaBits: Int) throws -> PKey {
        let name: String
        switch algorithm.family {
        case .rsaPKCS1, .rsaPSS: name = "RSA"
        case .ecdsa: name = "EC"
        case .eddsa: name = "ED25519"
        case .hmac: preconditionFailure("HMAC keys are not EVP_PKEYs")
        }
        guard let context = EVP_PKEY_CTX_new_from_name(nil, name, nil) else {
            throw cryptoError(.cryptoFailure, "cannot create a key generation context")
        }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_keygen_init(context) == 1 else { throw cryptoError(.cryptoFailure, "keygen init failed") }
        if name == "RSA", EVP_PKEY_CTX_set_rsa_keygen_bits(context, Int32(rsaBits)) != 1 {
            throw cryptoError(.cryptoFailure, "cannot set the RSA key size")
        }
        if let curve = algorithm.curve, EVP_PKEY_CTX_set_group_name(context, curve.name) != 1 {
            throw cryptoError(.cryptoFailure, "cannot set the EC curve")
        }
        var key: OpaquePointer?
        guard EVP_PKEY_generate(context, &key) == 1, let key else {
            throw cryptoError(.cryptoFailure, "key generation failed")
        }
        return try PKey(taking: key, hasPrivateKey: true)
    }

    // MARK: Import from JWK members (already base64url-decoded)

    struct RSAPrivateParts {
        var d: [UInt8]
        var crt: (p: [UInt8], q: [UInt8], dp: [UInt8], dq: [UInt8], qi: [UInt8])?
    }

    static func rsa(n: [UInt8], e: [UInt8], privateParts: RSAPrivateParts?) throws -> PKey {
        var bignums: [(String, [UInt8])] = [("n", n), ("e", e)]
        if let privateParts {
            bignums.append(("d", privateParts.d))
            if let crt = privateParts.crt {
                bignums += [
                    ("rsa-factor1", crt.p), ("rsa-factor2", crt.q), ("rsa-exponent1", crt.dp),
                    ("rsa-exponent2", crt.dq), ("rsa-coefficient1", crt.qi),
                ]
            }
        }
        return try fromData(type: "RSA", bignums: bignums, strings: [], octets: [], isPrivate: privateParts != nil)
    }

    static func ec(curve: String, x: [UInt8], y: [UInt8], d: [UInt8]?) throws -> PKey {
        let point = [0x04] + x + y
        let key = try fromData(
            type: "EC", bignums: d.map { [("priv", $0)] } ?? [],
            strings: [("group", curve)], octets: [("pub", point)], isPrivate: d != nil)
        // Point on the curve and of the right order (an invalid-curve point would leak nothing here,
        // since we only verify, but it is never a legitimate key).
        try key.check(private: d != nil)
        return key
    }

    static func ed25519(x: [UInt8], d: [UInt8]?) throws -> PKey {
        let raw: OpaquePointer?
        if let d {
            raw = d.withUnsafeBufferPointer { EVP_PKEY_new_raw_private_key_ex(nil, "ED25519", nil, $0.baseAddress, $0.count) }
        } else {
            raw = x.withUnsafeBufferPointer { EVP_PKEY_new_raw_public_key_ex(nil, "ED25519", nil, $0.baseAddress, $0.count) }
        }
        guard let raw else { throw cryptoError(.invalidKey, "invalid Ed25519 key") }
        let key = try PKey(taking: raw, hasPrivateKey: d != nil)
        if d != nil, try key.rawPublicKey() != x {
            throw JOSEError(.invalidKey, "Ed25519 private key does not match its public key \"x\"")
        }
        return key
    }

    private static func fromData(
        type: String, bignums: [(String, [UInt8])], strings: [(String, String)],
        octets: [(String, [UInt8])], isPrivate: Bool
    ) throws -> PKey {
        guard let builder = OSSL_PARAM_BLD_new() else { throw cryptoError(.cryptoFailure, "out of memory") }
        defer { OSSL_PARAM_BLD_free(builder) }
        var owned: [OpaquePointer] = []
        defer { for number in owned { BN_clear_free(number) } }
        // OSSL_PARAM_BLD keeps pointers to names and strings until to_param: keep them alive here.
        let keepAlive = (bignums.map { $0.0 } + strings.map { $0.0 } + strings.map { $0.1 } + octets.map { $0.0 })
            .map { strdup($0)! }
        defer { for pointer in keepAlive { free(pointer) } }
        var cursor = 0
        func next() -> UnsafeMutablePointer<CChar> {
            defer { cursor += 1 }
            return keepAlive[cursor]
        }
        for (_, bytes) in bignums {
            guard let bn = bytes.withUnsafeBufferPointer({ BN_bin2bn($0.baseAddress, Int32($0.count), nil) }) else {
                throw cryptoError(.cryptoFailure, "out of memory")
            }
            owned.append(bn)
            guard OSSL_PARAM_BLD_push_BN(builder, next(), bn) == 1 else { throw cryptoError(.cryptoFailure, "param build failed") }
        }
        let stringNames = strings.map { _ in next() }
        let stringValues = strings.map { _ in next() }
        for index in strings.indices {
            guard OSSL_PARAM_BLD_push_utf8_string(builder, stringNames[index], stringValues[index], 0) == 1 else {
                throw cryptoError(.cryptoFailure, "param build failed")
            }
        }
        for (_, bytes) in octets {
            let name = next()
            let ok = bytes.withUnsafeBytes { OSSL_PARAM_BLD_push_octet_string(builder, name, $0.baseAddress, $0.count) }
            guard ok == 1 else { throw cryptoError(.cryptoFailure, "param build failed") }
        }
        guard let params = OSSL_PARAM_BLD_to_param(builder) else { throw cryptoError(.cryptoFailure, "param build failed") }
        defer { OSSL_PARAM_free(params) }
        guard let context = EVP_PKEY_CTX_new_from_name(nil, type, nil) else {
            throw cryptoError(.cryptoFailure, "cannot create a key context")
        }
        defer { EVP_PKEY_CTX_free(context) }
        var key: OpaquePointer?
        let selection = isPrivate ? tessera_selection_keypair() : tessera_selection_public_key()
        guard EVP_PKEY_fromdata_init(context) == 1, EVP_PKEY_fromdata(context, &key, selection, params) == 1, let key else {
            throw cryptoError(.invalidKey, "libcrypto rejected the \(type) key parameters")
        }
        return try PKey(taking: key, hasPrivateKey: isPrivate)
    }

    /// Checks the public key (point on curve, right order), and for a private key that it matches.
    func check(private: Bool) throws {
        guard let context = EVP_PKEY_CTX_new_from_pkey(nil, pointer, nil) else {
            throw cryptoError(.cryptoFailure, "cannot create a key context")
        }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_public_check(context) == 1 else { throw cryptoError(.invalidKey, "public key check failed") }
        if `private`, EVP_PKEY_pairwise_check(context) != 1 {
            throw cryptoError(.invalidKey, "private key does not match the public key")
        }
    }

    // MARK: DER (PKCS#8, SubjectPublicKeyInfo)

    convenience init(pkcs8DER der: [UInt8]) throws {
        let info: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            let parsed = d2i_PKCS8_PRIV_KEY_INFO(nil, &cursor, buffer.count)
            if let parsed, cursor != buffer.baseAddress! + buffer.count {
                PKCS8_PRIV_KEY_INFO_free(parsed)  // trailing bytes after the structure
                return nil
            }
            return parsed
        }
        guard let info else { throw cryptoError(.invalidKey, "not a PKCS#8 private key") }
        defer { PKCS8_PRIV_KEY_INFO_free(info) }
        guard let key = EVP_PKCS82PKEY(info) else { throw cryptoError(.invalidKey, "unsupported PKCS#8 private key") }
        try self.init(taking: key, hasPrivateKey: true)
        if case .ec = kind { try check(private: true) }
    }

    convenience init(spkiDER der: [UInt8]) throws {
        let key: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            let parsed = d2i_PUBKEY(nil, &cursor, buffer.count)
            if let parsed, cursor != buffer.baseAddress! + buffer.count {
                EVP_PKEY_free(parsed)
                return nil
            }
            return parsed
        }
        guard let key else { throw cryptoError(.invalidKey, "not a SubjectPublicKeyInfo public key") }
        try self.init(taking: key, hasPrivateKey: false)
        if case .ec = kind { try check(private: false) }
    }

    func pkcs8DER() throws -> [UInt8] {
        guard hasPrivateKey else { throw JOSEError(.operationNotPermitted, "a public key has no PKCS#8 form") }
        guard let info = EVP_PKEY2PKCS8(pointer) else { throw cryptoError(.cryptoFailure, "PKCS#8 encoding failed") }
        defer { PKCS8_PRIV_KEY_INFO_free(info) }
        return try encode { i2d_PKCS8_PRIV_KEY_INFO(info, $0) }
    }

    func spkiDER() throws -> [UInt8] {
        try encode { i2d_PUBKEY(pointer, $0) }
    }

    private func encode(_ body: (UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>?) -> Int32) throws -> [UInt8] {
        let length = body(nil)
        guard length > 0 else { throw cryptoError(.cryptoFailure, "DER encoding failed") }
        var out = [UInt8](repeating: 0, count: Int(length))
        let written = out.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            return body(&cursor)
        }
        guard written == length else { throw cryptoError(.cryptoFailure, "DER encoding failed") }
        return out
    }

    /// The public half alone, as a separate key (so a verifier never holds private material).
    func publicKey() throws -> PKey {
        hasPrivateKey ? try PKey(spkiDER: try spkiDER()) : self
    }

    // MARK: Key strength

    /// True when the RSA modulus has the fingerprint of keys made by the Infineon library affected
    /// by ROCA (CVE-2017-15361): for each small prime p of its construction, n mod p lies in the
    /// subgroup generated by 65537. Random moduli pass all 38 tests with negligible probability.
    func hasROCAFingerprint() throws -> Bool {
        var bn: OpaquePointer?
        guard EVP_PKEY_get_bn_param(pointer, "n", &bn) == 1, let bn else { return false }
        defer { BN_free(bn) }
        for (prime, members) in ROCA.subgroups {
            let residue = BN_mod_word(bn, numericCast(prime))
            if residue == .max { throw cryptoError(.cryptoFailure, "modular reduction failed") }
            if !members.contains(Int(residue)) { return false }
        }
        return true
    }

    func publicExponent() throws -> [UInt8] { try bignum("e") }

    /// True for an RSA private key that carries its prime factors (CRT form).
    var hasRSAFactors: Bool {
        var bn: OpaquePointer?
        guard hasPrivateKey, EVP_PKEY_get_bn_param(pointer, "rsa-factor1", &bn) == 1 else {
            clearCryptoErrors()
            return false
        }
        BN_clear_free(bn)
        return true
    }

    // MARK: Signatures

    /// Signs `data` and returns the JWS form of the signature (r‖s for ECDSA, RFC 7518 §3.4).
    func sign(_ data: UnsafeRawBufferPointer, algorithm: JWSAlgorithm) throws -> [UInt8] {
        guard let context = EVP_MD_CTX_new() else { throw cryptoError(.cryptoFailure, "out of memory") }
        defer { EVP_MD_CTX_free(context) }
        var keyContext: OpaquePointer?
        guard EVP_DigestSignInit(context, &keyContext, FetchedDigests.shared.md(for: algorithm.digest), nil, pointer) == 1 else {
            throw cryptoError(.cryptoFailure, "cannot initialise \(algorithm) signing")
        }
        if algorithm.family == .rsaPSS { try configurePSS(keyContext, algorithm) }
        var length = Int(EVP_PKEY_get_size(pointer))
        var out = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(context, &out, &length, data.bindMemory(to: UInt8.self).baseAddress, data.count) == 1 else {
            throw cryptoError(.cryptoFailure, "\(algorithm) signing failed")
        }
        out.removeSubrange(length...)
        if let curve = algorithm.curve { return try ECDSASignature.jwsForm(der: out, size: curve.size) }
        return out
    }

    /// Verifies a JWS-form signature. Any malformed signature is simply invalid.
    func isValidSignature(
        _ signature: UnsafeRawBufferPointer, for data: UnsafeRawBufferPointer,
        algorithm: JWSAlgorithm
    ) -> Bool {
        var der: [UInt8] = []
        switch algorithm.family {
        case .ecdsa:
            // RFC 7518 §3.4: exactly 2 × the coordinate size; DER or any other length is invalid.
            guard let curve = algorithm.curve, signature.count == 2 * curve.size,
                let converted = ECDSASignature.der(jws: signature, size: curve.size)
            else { return false }
            der = converted
        case .rsaPKCS1, .rsaPSS:
            guard signature.count == Int(EVP_PKEY_get_size(pointer)) else { return false }
        case .eddsa:
            guard signature.count == 64 else { return false }
        case .hmac:
            return false
        }
        let context: OpaquePointer
        if algorithm.family == .eddsa {
            guard let fresh = EVP_MD_CTX_new() else { return false }
            context = fresh
        } else {
            guard let copied = verifyContext(for: algorithm) else {
                clearCryptoErrors()
                return false
            }
            context = copied
        }
        defer {
            EVP_MD_CTX_free(context)
            clearCryptoErrors()
        }
        if algorithm.family == .eddsa {
            guard EVP_DigestVerifyInit(context, nil, nil, nil, pointer) == 1 else { return false }
        }
        let input = data.bindMemory(to: UInt8.self).baseAddress
        if der.isEmpty {
            return EVP_DigestVerify(
                context, signature.bindMemory(to: UInt8.self).baseAddress, signature.count,
                input, data.count) == 1
        }
        return der.withUnsafeBufferPointer { EVP_DigestVerify(context, $0.baseAddress, $0.count, input, data.count) == 1 }
    }

    /// RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash output.
    private func configurePSS(_ keyContext: OpaquePointer?, _ algorithm: JWSAlgorithm) throws {
        guard EVP_PKEY_CTX_set_rsa_padding(keyContext, RSA_PKCS1_PSS_PADDING) == 1,
            EVP_PKEY_CTX_set_rsa_pss_saltlen(keyContext, RSA_PSS_SALTLEN_DIGEST) == 1,
            EVP_PKEY_CTX_set_rsa_mgf1_md(keyContext, FetchedDigests.shared.md(for: algorithm.digest)) == 1
        else {
            throw cryptoError(.cryptoFailure, "cannot configure RSA-PSS")
        }
    }
}

/// The subgroups of ⟨65537⟩ modulo the small primes used by the ROCA key construction.
private enum ROCA {
    static let primes = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
        101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
    ]
    static let subgroups: [(Int, Set<Int>)] = primes.map { prime in
        var members = Set<Int>()
        var value = 1
        repeat {
            members.insert(value)
            value = value * (65537 % prime) % prime
        } while value != 1
        return (prime, members)
    }
}
