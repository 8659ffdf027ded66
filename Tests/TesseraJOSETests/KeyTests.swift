import Foundation
import Testing

@testable import TesseraJOSE

@Suite("Keys: generation, JWK and PEM import/export, algorithm binding")
struct KeyTests {
    static let asymmetric = JWSAlgorithm.asymmetric

    @Test("a generated key signs and its verification key verifies; one changed byte does not", arguments: JWSAlgorithm.all)
    func generateSignVerify(_ algorithm: JWSAlgorithm) throws {
        let key = try SigningKey.generate(algorithm)
        #expect(key.algorithm == algorithm)
        #expect(key.keyID != nil)
        let message = Array("payload for \(algorithm)".utf8)
        let signature = try key.signature(for: message)
        let verifier = try key.verificationKey()
        #expect(verifier.isValidSignature(signature, for: message))
        var changed = signature
        changed[changed.count / 2] ^= 0x01
        #expect(!verifier.isValidSignature(changed, for: message))
        #expect(!verifier.isValidSignature(signature, for: message + [0]))
        if let curve = algorithm.curve { #expect(signature.count == 2 * curve.size) }
        if algorithm == .eddsa { #expect(signature.count == 64) }
        if algorithm.isSymmetric { #expect(signature.count == algorithm.digestSize) }
    }

    @Test("private JWK round trip: the re-imported key signs what the original verifies", arguments: JWSAlgorithm.all)
    func privateJWKRoundTrip(_ algorithm: JWSAlgorithm) throws {
        let key = try SigningKey.generate(algorithm)
        let jwk = try key.privateJWK()
        #expect(jwk.algorithm == algorithm.name && jwk.use == "sig" && jwk.keyID == key.keyID)
        let reread = try SigningKey(jwk: try JWK(json: jwk.jsonString))
        #expect(reread.keyID == key.keyID && reread.algorithm == algorithm)
        let message = Array("round trip".utf8)
        #expect(try key.verificationKey().isValidSignature(try reread.signature(for: message), for: message))
    }

    @Test("public JWK: no private member, verifies, kid is the RFC 7638 thumbprint", arguments: asymmetric)
    func publicJWK(_ algorithm: JWSAlgorithm) throws {
        let key = try SigningKey.generate(algorithm)
        let jwk = try #require(try key.publicJWK())
        for name in JWK.privateMemberNames { #expect(jwk.members[name] == nil, "\(name) in public JWK") }
        #expect(!jwk.containsPrivateMembers)
        #expect(try jwk.thumbprint() == key.keyID)
        #expect(try key.thumbprint() == key.keyID)
        let verifier = try VerificationKey(jwk: try JWK(json: jwk.jsonString))
        let message = Array("public".utf8)
        #expect(verifier.isValidSignature(try key.signature(for: message), for: message))
        #expect(try verifier.publicJWK() == jwk)
    }

    @Test("PEM: PKCS#8 private and SPKI public round trip", arguments: asymmetric)
    func pemRoundTrip(_ algorithm: JWSAlgorithm) throws {
        let key = try SigningKey.generate(algorithm)
        let privatePEM = try key.pemRepresentation()
        #expect(privatePEM.hasPrefix("-----BEGIN PRIVATE KEY-----\n") && privatePEM.hasSuffix("-----END PRIVATE KEY-----\n"))
        let reread = try SigningKey(pemRepresentation: privatePEM, algorithm: algorithm)
        #expect(reread.keyID == key.keyID)
        let publicPEM = try key.verificationKey().pemRepresentation()
        #expect(publicPEM.hasPrefix("-----BEGIN PUBLIC KEY-----\n"))
        let verifier = try VerificationKey(pemRepresentation: publicPEM, algorithm: algorithm)
        let message = Array("pem".utf8)
        #expect(verifier.isValidSignature(try reread.signature(for: message), for: message))
        #expect(try verifier.thumbprint() == key.keyID)
        // A private PEM is not a public key, and vice versa.
        expectError(JOSEError.Code.invalidKey) { try VerificationKey(pemRepresentation: privatePEM, algorithm: algorithm) }
        expectError(JOSEError.Code.invalidKey) { try SigningKey(pemRepresentation: publicPEM, algorithm: algorithm) }
    }

    @Test("PEM: legacy, encrypted, garbled and trailing-garbage forms are refused with a hint")
    func pemRefusals() throws {
        let key = try SigningKey.generate(.es256)
        let pem = try key.pemRepresentation()
        let legacy = pem.replacingOccurrences(of: "PRIVATE KEY", with: "EC PRIVATE KEY")
        do {
            _ = try SigningKey(pemRepresentation: legacy, algorithm: .es256)
            Issue.record("legacy PEM accepted")
        } catch let error as JOSEError {
            #expect(error.code == .invalidKey && error.message.contains("openssl pkcs8"))
        }
        let encrypted = pem.replacingOccurrences(of: "PRIVATE KEY", with: "ENCRYPTED PRIVATE KEY")
        expectError(JOSEError.Code.invalidKey) { try SigningKey(pemRepresentation: encrypted, algorithm: .es256) }
        let der = try PEM.decode(pem, label: PEM.privateKeyLabel)
        let padded = PEM.encode(der: der + [0], label: PEM.privateKeyLabel)
        expectError(JOSEError.Code.invalidKey) { try SigningKey(pemRepresentation: padded, algorithm: .es256) }
        let garbled = pem.replacingOccurrences(of: "\n-----END", with: "!!\n-----END")
        expectError(JOSEError.Code.invalidKey) { try SigningKey(pemRepresentation: garbled, algorithm: .es256) }
        expectError(JOSEError.Code.invalidKey) { try SigningKey(pemRepresentation: "", algorithm: .es256) }
    }

    @Test("RFC 8725 §3.1: a key is bound to one algorithm; its type cannot serve another")
    func algorithmBinding() throws {
        let ec = try SigningKey.generate(.es256)
        let pem = try ec.pemRepresentation()
        // The same EC key cannot be read for another curve's algorithm, RSA or EdDSA, or HMAC.
        for other: JWSAlgorithm in [.es384, .es512, .rs256, .ps256, .eddsa] {
            expectError(JOSEError.Code.invalidKey, "\(other)") { try SigningKey(pemRepresentation: pem, algorithm: other) }
        }
        expectError(JOSEError.Code.invalidKey) { try SigningKey(pemRepresentation: pem, algorithm: .hs256) }
        // JWK alg and the requested algorithm must agree.
        let jwk = try ec.privateJWK()
        expectError(JOSEError.Code.algorithmMismatch) { try SigningKey(jwk: jwk, algorithm: .es384) }
        // An RSA public JWK can never be used as an HMAC secret (CVE-2015-9235 class).
        let rsa = try #require(try SigningKey.generate(.rs256).publicJWK())
        var members = rsa.members
        members["alg"] = .string("HS256")
        expectError(JOSEError.Code.invalidKey) { try VerificationKey(jwk: try JWK(members: members)) }
        // Without alg anywhere, no algorithm is guessed.
        members["alg"] = nil
        expectError(JOSEError.Code.missingAlgorithm) { try VerificationKey(jwk: try JWK(members: members)) }
    }

    @Test("a token whose alg differs from the key's is refused before any signature check")
    func headerCannotChooseAlgorithm() throws {
        let rsa = try SigningKey.generate(.rs256)
        let ps = try VerificationKey(jwk: try #require(try rsa.publicJWK()), algorithm: .rs256)
        // Same RSA key, PS256 signature: a valid signature under another algorithm.
        let header = Base64URL.encode(Array(#"{"alg":"PS256"}"#.utf8))
        let input = header + "." + Base64URL.encode(Array("{}".utf8))
        let psKey = try SigningKey(pemRepresentation: try rsa.pemRepresentation(), algorithm: .ps256)
        let token = input + "." + Base64URL.encode(try psKey.signature(for: Array(input.utf8)))
        expectError(JOSEError.Code.algorithmMismatch) { try UnverifiedJWS(parsing: token).verified(with: ps) }
    }

    @Test("RFC 7518 §3.3: RSA keys under 2048 bits are refused for generation and import")
    func weakRSA() throws {
        expectError(JOSEError.Code.weakKey) { try SigningKey.generate(.rs256, rsaBits: 1024) }
        let object = try Vectors.json("derived/jwt_attack_cases.json")
        let weak = object["weak_key_case"] as! [String: Any]
        let keys = try VerificationKeySet(jwks: JWKSet(keys: [try Vectors.jwk(weak["jwks_entry"]!)]))
        #expect(keys.keys.isEmpty)
        #expect(keys.skipped.map(\.error.code) == [.weakKey])
    }

    @Test("RFC 7518 §3.2: HMAC secrets shorter than the hash output are refused", arguments: [JWSAlgorithm.hs256, .hs384, .hs512])
    func shortHMAC(_ algorithm: JWSAlgorithm) throws {
        let short = [UInt8](repeating: 7, count: algorithm.digestSize - 1)
        expectError(JOSEError.Code.weakKey) { try SigningKey(secret: short, algorithm: algorithm) }
        expectError(JOSEError.Code.weakKey) { try VerificationKey(secret: short, algorithm: algorithm) }
        #expect(throws: Never.self) { try SigningKey(secret: short + [1], algorithm: algorithm) }
        expectError(JOSEError.Code.invalidKey) { try SigningKey(secret: short + [1], algorithm: .es256) }
    }

    @Test("HMAC keys have no public form: no public JWK, no PEM, no thumbprint; generated kid is random")
    func hmacHasNoPublicForm() throws {
        let key = try SigningKey.generate(.hs256)
        #expect(try key.publicJWK() == nil)
        #expect(try key.thumbprint() == nil)
        expectError(JOSEError.Code.operationNotPermitted) { try key.pemRepresentation() }
        #expect(try JWKSet(publicKeysOf: [key]).keys.isEmpty)
        #expect(try SigningKey.generate(.hs256).keyID != key.keyID)
        // THREATS A27: generated secrets are 512 random bits, far beyond offline guessing.
        #expect(try Base64URL.decode(try #require(try key.privateJWK().members["k"]?.stringValue)).count == 64)
    }

    @Test("malformed JWKs: wrong member types, bad base64url, wrong sizes, missing members")
    func malformedJWKs() throws {
        let good = try #require(try SigningKey.generate(.es256).publicJWK()).members
        func variant(_ change: (inout JSONObject) -> Void) -> JSONObject {
            var copy = good
            change(&copy)
            return copy
        }
        expectError(JOSEError.Code.invalidKey) { try JWK(members: variant { $0["kty"] = nil }) }
        expectError(JOSEError.Code.invalidKey) { try JWK(members: variant { $0["kid"] = .number(JSONNumber(1)) }) }
        expectError(JOSEError.Code.invalidKey) { try JWK(members: variant { $0["key_ops"] = .string("verify") }) }
        expectError(JOSEError.Code.invalidKey) { try JWK(members: variant { $0["key_ops"] = .array([.string("verify"), .string("verify")]) }) }
        expectError(JOSEError.Code.invalidKey) {
            try JWK(
                members: variant {
                    $0["use"] = .string("sig")
                    $0["key_ops"] = .array([.string("encrypt")])
                })
        }
        expectError(JOSEError.Code.invalidKey) { try VerificationKey(jwk: try JWK(members: variant { $0["x"] = .string("AA==") })) }
        expectError(JOSEError.Code.invalidKey) { try VerificationKey(jwk: try JWK(members: variant { $0["x"] = .string("AAAA") })) }
        expectError(JOSEError.Code.invalidKey) { try VerificationKey(jwk: try JWK(members: variant { $0["y"] = nil })) }
        expectError(JOSEError.Code.keyUsageMismatch) {
            try VerificationKey(jwk: try JWK(members: variant { $0["key_ops"] = .array([.string("sign")]) }))
        }
        expectError(JOSEError.Code.invalidJSON) { try JWK(json: #"{"kty":"EC","kty":"RSA"}"#) }
        // RSA: leading zero octets in n are not the minimum encoding (RFC 7518 §6.3.1.1).
        let rsa = try #require(try SigningKey.generate(.rs256).publicJWK()).members
        var padded = rsa
        padded["n"] = .string(Base64URL.encode([0] + (try Base64URL.decode(rsa["n"]!.stringValue!))))
        expectError(JOSEError.Code.invalidKey) { try VerificationKey(jwk: try JWK(members: padded)) }
    }

    @Test("RSA private JWK with only some CRT members, or inconsistent ones, is refused")
    func inconsistentRSAPrivate() throws {
        let jwk = try SigningKey.generate(.rs256).privateJWK()
        var partial = jwk.members
        partial["dq"] = nil
        expectError(JOSEError.Code.invalidKey) { try SigningKey(jwk: try JWK(members: partial)) }
        var onlyD = jwk.members
        for name in ["p", "q", "dp", "dq", "qi"] { onlyD[name] = nil }
        #expect(throws: Never.self) { try SigningKey(jwk: try JWK(members: onlyD)) }
        var wrongD = onlyD
        let other = try SigningKey.generate(.rs256).privateJWK()
        wrongD["d"] = other.members["d"]
        expectError(JOSEError.Code.invalidKey) { try SigningKey(jwk: try JWK(members: wrongD)) }
    }

    @Test("an RSA PKCS#8 key with a corrupted CRT value is refused when loaded, not when it signs")
    func corruptedRSAPEM() throws {
        var jwk = try SigningKey.generate(.rs256).privateJWK().members
        var dp = try Base64URL.decode(jwk["dp"]!.stringValue!)
        dp[dp.count / 2] ^= 0x10
        jwk["dp"] = .string(Base64URL.encode(dp))
        // The JWK path checks too; build the PEM from the corrupted parts through libcrypto directly.
        let pkey = try PKey.rsa(
            n: try Base64URL.decode(jwk["n"]!.stringValue!), e: try Base64URL.decode(jwk["e"]!.stringValue!),
            privateParts: .init(
                d: try Base64URL.decode(jwk["d"]!.stringValue!),
                crt: (
                    try Base64URL.decode(jwk["p"]!.stringValue!), try Base64URL.decode(jwk["q"]!.stringValue!), dp,
                    try Base64URL.decode(jwk["dq"]!.stringValue!), try Base64URL.decode(jwk["qi"]!.stringValue!)
                )))
        let pem = PEM.encode(der: try pkey.pkcs8DER(), label: PEM.privateKeyLabel)
        expectError(JOSEError.Code.invalidKey) { try SigningKey(pemRepresentation: pem, algorithm: .rs256) }
        expectError(JOSEError.Code.invalidKey) { try SigningKey(jwk: try JWK(members: jwk)) }
    }

    @Test("EC private JWK whose d does not match x, y is refused; Ed25519 likewise")
    func mismatchedPrivateParts() throws {
        var ec = try SigningKey.generate(.es256).privateJWK().members
        ec["d"] = try SigningKey.generate(.es256).privateJWK().members["d"]
        expectError(JOSEError.Code.invalidKey) { try SigningKey(jwk: try JWK(members: ec)) }
        var ed = try SigningKey.generate(.eddsa).privateJWK().members
        ed["d"] = try SigningKey.generate(.eddsa).privateJWK().members["d"]
        expectError(JOSEError.Code.invalidKey) { try SigningKey(jwk: try JWK(members: ed)) }
    }

    @Test("a public JWK Set built from signing keys never carries a private member or an HMAC key")
    func publicJWKSet() throws {
        let keys = try JWSAlgorithm.all.map { try SigningKey.generate($0) }
        let set = try JWKSet(publicKeysOf: keys)
        #expect(set.keys.count == JWSAlgorithm.asymmetric.count)
        #expect(!set.containsPrivateMembers)
        let text = set.jsonString
        for name in ["\"d\"", "\"p\"", "\"q\"", "\"dp\"", "\"dq\"", "\"qi\"", "\"k\""] { #expect(!text.contains(name)) }
        let reread = try VerificationKeySet(jwks: try JWKSet(json: text))
        #expect(reread.keys.count == set.keys.count && reread.skipped.isEmpty)
    }

    @Test("errors never carry key material")
    func errorsCarryNoSecrets() throws {
        let jwk = try SigningKey.generate(.es256).privateJWK()
        let d = try #require(jwk.members["d"]?.stringValue)
        do {
            _ = try VerificationKey(jwk: jwk)
            Issue.record("private JWK accepted as verification key")
        } catch let error as JOSEError {
            #expect(!error.description.contains(d))
        }
        do {
            _ = try SigningKey(jwk: jwk, algorithm: .es384)
        } catch let error as JOSEError {
            #expect(!error.description.contains(d))
            #expect(!String(describing: jwk).contains(d))
        }
    }

    @Test("constant-time comparison and random bytes")
    func primitives() throws {
        #expect(ConstantTime.equals([1, 2, 3], [1, 2, 3]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2, 4]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2]))
        #expect(ConstantTime.equals([UInt8](), [UInt8]()))
        let a = try SecureRandom.bytes(count: 32)
        let b = try SecureRandom.bytes(count: 32)
        #expect(a.count == 32 && a != b)
        #expect(Base64URL.encode(Digest.sha256(Array("abc".utf8))) == "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0")
    }
}
