import Foundation
import Testing

@testable import TesseraJOSE

/// Project Wycheproof primitive files, run through Tessera's JWS keys. Every case of every file runs;
/// each test counts the cases it decided and compares with the file's `numberOfTests`.
@Suite("Project Wycheproof: signature primitives")
struct WycheproofPrimitiveTests {
    static func algorithm(forSHA sha: String, family: JWSAlgorithm.Family) -> JWSAlgorithm? {
        let table: [JWSAlgorithm.Family: [String: JWSAlgorithm]] = [
            .rsaPKCS1: ["SHA-256": .rs256, "SHA-384": .rs384, "SHA-512": .rs512],
            .rsaPSS: ["SHA-256": .ps256, "SHA-384": .ps384, "SHA-512": .ps512],
            .ecdsa: ["SHA-256": .es256, "SHA-384": .es384, "SHA-512": .es512],
            .hmac: ["SHA-256": .hs256, "SHA-384": .hs384, "SHA-512": .hs512],
        ]
        return table[family]?[sha]
    }

    /// Runs a verification file: every group's key is read from its JWK (and, when given, its PEM,
    /// which must be the same key), then each case's signature is checked.
    func runVerifyFile(
        _ file: String, family: JWSAlgorithm.Family, jwkMember: String,
        acceptableDecision: Bool = false
    ) throws -> (count: Int, acceptable: [Int]) {
        let object = try Vectors.json("wycheproof/\(file)")
        var count = 0
        var acceptable: [Int] = []
        for group in object["testGroups"] as! [[String: Any]] {
            let algorithm: JWSAlgorithm
            if family == .eddsa {
                algorithm = .eddsa
            } else {
                algorithm = try #require(Self.algorithm(forSHA: group["sha"] as! String, family: family))
            }
            var jwkObject: [String: Any]
            if let given = group[jwkMember] as? [String: Any] {
                jwkObject = given
            } else {
                // A few ECDSA groups give the key only as an uncompressed point (and PEM): build the JWK.
                let point = try [UInt8](hex: (group["publicKey"] as! [String: Any])["uncompressed"] as! String)
                let size = (point.count - 1) / 2
                let curve = try #require(algorithm.curve)
                #expect(point.first == 4 && size == curve.size)
                jwkObject = [
                    "kty": "EC", "crv": curve.name, "x": Base64URL.encode(point[1...size]),
                    "y": Base64URL.encode(point[(1 + size)...]),
                ]
            }
            jwkObject["alg"] = nil  // Wycheproof's alg fields are informative; the test binds the algorithm.
            let key = try VerificationKey(jwk: try Vectors.jwk(jwkObject), algorithm: algorithm)
            if let pem = group["publicKeyPem"] as? String {
                let pemKey = try VerificationKey(pemRepresentation: pem, algorithm: algorithm)
                #expect(try pemKey.thumbprint() == key.thumbprint(), "\(file): PEM and JWK differ")
            }
            for test in group["tests"] as! [[String: Any]] {
                count += 1
                let id = test["tcId"] as! Int
                let message = try [UInt8](hex: test["msg"] as! String)
                let signature = try [UInt8](hex: test["sig"] as! String)
                let valid = key.isValidSignature(signature, for: message)
                switch test["result"] as! String {
                case "valid": #expect(valid, "\(file) tcId \(id) (\(test["comment"]!)) should verify")
                case "invalid": #expect(!valid, "\(file) tcId \(id) (\(test["comment"]!)) should be rejected")
                default:
                    acceptable.append(id)
                    #expect(valid == acceptableDecision, "\(file) tcId \(id): acceptable case decided otherwise")
                }
            }
        }
        #expect(count == object["numberOfTests"] as! Int, "\(file): not every case ran")
        return (count, acceptable)
    }

    @Test(
        "ECDSA P1363 (ES256, ES384, ES512): every case",
        arguments: [
            "ecdsa_secp256r1_sha256_p1363_test.json", "ecdsa_secp384r1_sha384_p1363_test.json", "ecdsa_secp521r1_sha512_p1363_test.json",
        ])
    func ecdsa(_ file: String) throws {
        let result = try runVerifyFile(file, family: .ecdsa, jwkMember: "publicKeyJwk")
        #expect(result.acceptable.isEmpty)
    }

    @Test("Ed25519 (EdDSA): every case")
    func ed25519() throws {
        _ = try runVerifyFile("ed25519_test.json", family: .eddsa, jwkMember: "publicKeyJwk")
    }

    /// Decision: the one `acceptable` case per file (a DigestInfo without the NULL parameter,
    /// flag MissingNull) is rejected; libcrypto rejects it too and JWS never produces it.
    @Test(
        "RSASSA-PKCS1-v1_5 verify (RS256/384/512, 2048–4096 bits): every case; MissingNull rejected",
        arguments: [
            "rsa_signature_2048_sha256_test.json", "rsa_signature_2048_sha384_test.json", "rsa_signature_2048_sha512_test.json",
            "rsa_signature_3072_sha256_test.json", "rsa_signature_3072_sha384_test.json", "rsa_signature_3072_sha512_test.json",
            "rsa_signature_4096_sha256_test.json", "rsa_signature_4096_sha384_test.json", "rsa_signature_4096_sha512_test.json",
        ])
    func rsaPKCS1Verify(_ file: String) throws {
        let result = try runVerifyFile(file, family: .rsaPKCS1, jwkMember: "keyJwk", acceptableDecision: false)
        #expect(result.acceptable.count == 1)
    }

    @Test(
        "RSASSA-PSS with JWS parameters (PS256/384/512): every case",
        arguments: [
            "rsa_pss_2048_sha256_mgf1_32_test.json", "rsa_pss_3072_sha256_mgf1_32_test.json", "rsa_pss_4096_sha256_mgf1_32_test.json",
            "rsa_pss_2048_sha384_mgf1_48_test.json", "rsa_pss_4096_sha384_mgf1_48_test.json", "rsa_pss_4096_sha512_mgf1_64_test.json",
        ])
    func rsaPSS(_ file: String) throws {
        let result = try runVerifyFile(file, family: .rsaPSS, jwkMember: "publicKeyJwk")
        #expect(result.acceptable.isEmpty)
    }

    /// RSASSA-PKCS1-v1_5 is deterministic: signing with the PKCS#8 key must give the expected bytes.
    /// SHA-1 and SHA-224 groups have no JWS algorithm: they are counted as not applicable and the
    /// test checks there is nothing else it left out. `acceptable` cases (e = 3, flag SmallPublicKey)
    /// are decided as valid: e = 3 is an odd exponent Tessera accepts, and the bytes must match.
    @Test(
        "RSASSA-PKCS1-v1_5 signing (RS256/384/512) reproduces every signature byte for byte",
        arguments: [
            "rsa_pkcs1_2048_sig_gen_test.json", "rsa_pkcs1_3072_sig_gen_test.json", "rsa_pkcs1_4096_sig_gen_test.json",
        ])
    func rsaPKCS1Sign(_ file: String) throws {
        let object = try Vectors.json("wycheproof/\(file)")
        var count = 0
        var notApplicable = 0
        for group in object["testGroups"] as! [[String: Any]] {
            let tests = group["tests"] as! [[String: Any]]
            guard let algorithm = Self.algorithm(forSHA: group["sha"] as! String, family: .rsaPKCS1) else {
                #expect(["SHA-1", "SHA-224"].contains(group["sha"] as! String))
                notApplicable += tests.count
                continue
            }
            let der = try [UInt8](hex: group["privateKeyPkcs8"] as! String)
            let pem = PEM.encode(der: der, label: PEM.privateKeyLabel)
            let key = try SigningKey(pemRepresentation: pem, algorithm: algorithm)
            let verifier = try key.verificationKey()
            for test in tests {
                count += 1
                let message = try [UInt8](hex: test["msg"] as! String)
                let expected = try [UInt8](hex: test["sig"] as! String)
                let signature = try key.signature(for: message)
                #expect(signature == expected, "\(file) tcId \(test["tcId"]!)")
                #expect(verifier.isValidSignature(signature, for: message))
            }
        }
        #expect(count + notApplicable == object["numberOfTests"] as! Int)
        #expect(count > 0)
    }

    /// HMAC files test the primitive. For JWS, RFC 7518 §3.2 forbids truncated MACs (tagSize < hash
    /// size: must be rejected) and keys shorter than the hash (refused when the key is loaded).
    @Test(
        "HMAC-SHA2 (HS256/384/512): every case; truncated tags and short keys rejected",
        arguments: [
            "hmac_sha256_test.json", "hmac_sha384_test.json", "hmac_sha512_test.json",
        ])
    func hmac(_ file: String) throws {
        let object = try Vectors.json("wycheproof/\(file)")
        let algorithm: JWSAlgorithm = file.contains("256") ? .hs256 : file.contains("384") ? .hs384 : .hs512
        var count = 0
        var refusedKeys = 0
        var truncated = 0
        for group in object["testGroups"] as! [[String: Any]] {
            let keyBits = group["keySize"] as! Int
            let tagBits = group["tagSize"] as! Int
            for test in group["tests"] as! [[String: Any]] {
                count += 1
                let secret = try [UInt8](hex: test["key"] as! String)
                let message = try [UInt8](hex: test["msg"] as! String)
                let tag = try [UInt8](hex: test["tag"] as! String)
                if keyBits < algorithm.digestSize * 8 {
                    refusedKeys += 1
                    expectError(JOSEError.Code.weakKey) { try VerificationKey(secret: secret, algorithm: algorithm) }
                    continue
                }
                let key = try VerificationKey(secret: secret, algorithm: algorithm)
                let valid = key.isValidSignature(tag, for: message)
                if tagBits < algorithm.digestSize * 8 {
                    truncated += 1
                    #expect(!valid, "\(file) tcId \(test["tcId"]!): truncated MAC accepted")
                } else {
                    #expect(valid == (test["result"] as! String == "valid"), "\(file) tcId \(test["tcId"]!)")
                    if test["result"] as! String == "valid" {
                        #expect(try SigningKey(secret: secret, algorithm: algorithm).signature(for: message) == tag)
                    }
                }
            }
        }
        #expect(count == object["numberOfTests"] as! Int)
        #expect(refusedKeys > 0 && truncated > 0)
    }
}
