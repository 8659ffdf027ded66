import Foundation
import Testing

@testable import TesseraJOSE

/// One RFC JWS example in the normalised form of `shared/vectors/rfc/`.
struct RFCJWSVector: CustomTestStringConvertible, Sendable {
    let file: String
    let id: String
    let algorithm: JWSAlgorithm
    let keyJSON: Data
    let publicKeyJSON: Data?
    let payload: String
    let signingInput: String
    let signatureB64U: String
    let compact: String
    let deterministic: Bool

    var testDescription: String { id }

    static func load(_ file: String, member: String? = nil) throws -> RFCJWSVector {
        var object = try Vectors.json("rfc/\(file)")
        if let member { object = object[member] as! [String: Any] }
        let algorithm = try #require(JWSAlgorithm(name: object["alg"] as! String))
        let publicKey = object["public_key"].flatMap { $0 is NSNull ? nil : $0 }
        return RFCJWSVector(
            file: file, id: object["id"] as! String, algorithm: algorithm,
            keyJSON: try JSONSerialization.data(withJSONObject: object["key"]!),
            publicKeyJSON: try publicKey.map { try JSONSerialization.data(withJSONObject: $0) },
            payload: object["payload"] as! String, signingInput: object["signing_input"] as! String,
            signatureB64U: object["signature_b64u"] as! String, compact: object["compact"] as! String,
            deterministic: object["deterministic"] as! Bool)
    }

    func verificationKey() throws -> VerificationKey {
        try VerificationKey(jwk: try JWK(jsonBytes: publicKeyJSON ?? keyJSON), algorithm: algorithm)
    }

    func signingKey() throws -> SigningKey {
        try SigningKey(jwk: try JWK(jsonBytes: keyJSON), algorithm: algorithm)
    }
}

@Suite("RFC JWS examples: RFC 7515 App. A, RFC 7520 §4, RFC 8037 App. A")
struct RFCVectorTests {
    static let vectors: [RFCJWSVector] = {
        let files = [
            "rfc7515_a1_hs256.json", "rfc7515_a2_rs256.json", "rfc7515_a3_es256.json", "rfc7515_a4_es512.json",
            "rfc7520_4_1_rs256.json", "rfc7520_4_2_ps384.json", "rfc7520_4_3_es512.json", "rfc7520_4_4_hs256.json",
        ]
        var vectors = files.map { try! RFCJWSVector.load($0) }
        vectors.append(try! RFCJWSVector.load("rfc8037_a_ed25519.json", member: "a4_jws"))
        return vectors
    }()

    @Test("the example verifies with its public key", arguments: vectors)
    func verifies(_ vector: RFCJWSVector) throws {
        let verified = try UnverifiedJWS(parsing: vector.compact).verified(with: try vector.verificationKey())
        #expect(verified.payload == Array(vector.payload.utf8))
        #expect(verified.header.algorithm == vector.algorithm)
    }

    @Test("deterministic signatures (HS*, RS*, EdDSA) are reproduced byte for byte", arguments: vectors.filter(\.deterministic))
    func reproducesSignature(_ vector: RFCJWSVector) throws {
        let signature = try vector.signingKey().signature(for: Array(vector.signingInput.utf8))
        #expect(Base64URL.encode(signature) == vector.signatureB64U)
    }

    @Test("randomised signatures (ES*, PS*) made with the example key verify", arguments: vectors.filter { !$0.deterministic })
    func signsRandomised(_ vector: RFCJWSVector) throws {
        let key = try vector.signingKey()
        let signature = try key.signature(for: Array(vector.signingInput.utf8))
        #expect(signature != (try Base64URL.decode(vector.signatureB64U)))
        #expect(try vector.verificationKey().isValidSignature(signature, for: Array(vector.signingInput.utf8)))
        if let curve = vector.algorithm.curve { #expect(signature.count == 2 * curve.size) }
    }

    @Test("changing any one character of the token makes it fail", arguments: vectors)
    func everyByteMatters(_ vector: RFCJWSVector) throws {
        let key = try vector.verificationKey()
        let bytes = Array(vector.compact.utf8)
        for index in bytes.indices where bytes[index] != UInt8(ascii: ".") {
            let changed = tamper(vector.compact, at: index)
            #expect(throws: JOSEError.self, "\(vector.id) position \(index)") {
                try UnverifiedJWS(parsing: changed).verified(with: key)
            }
        }
    }

    @Test("RFC 7515 A.5: the unsecured JWS is rejected whatever key is offered")
    func unsecuredRejected() throws {
        let object = try Vectors.json("rfc/rfc7515_a5_unsecured_none.json")
        let compact = object["compact"] as! String
        expectError(JOSEError.Code.unsupportedAlgorithm) { try UnverifiedJWS(parsing: compact) }
        #expect(JWSAlgorithm(name: "none") == nil)
        // Also with a real signature in the third segment.
        let hs = try RFCVectorTests.vectors[0].verificationKey()
        expectError(JOSEError.Code.unsupportedAlgorithm) {
            try UnverifiedJWS(parsing: compact + RFCVectorTests.vectors[0].signatureB64U).verified(with: hs)
        }
    }

    @Test("RFC 7638 §3.1: the example thumbprint")
    func rfc7638Thumbprint() throws {
        let object = try Vectors.json("rfc/rfc7638_3_1_thumbprint.json")
        let jwk = try Vectors.jwk(object["jwk"]!)
        #expect(try jwk.thumbprint() == object["thumbprint_b64u"] as! String)
        let key = try VerificationKey(jwk: jwk, algorithm: .rs256)
        #expect(try key.thumbprint() == object["thumbprint_b64u"] as? String)
    }

    @Test("RFC 8037 A.1–A.3: Ed25519 private key, derived public key and thumbprint")
    func rfc8037Keys() throws {
        let object = try Vectors.json("rfc/rfc8037_a_ed25519.json")
        let signing = try SigningKey(jwk: try Vectors.jwk(object["a1_private_key"]!), algorithm: .eddsa)
        let expectedPublic = try Vectors.jwk(object["a2_public_key"]!)
        let exported = try #require(try signing.publicJWK())
        #expect(exported.members["x"] == expectedPublic.members["x"])
        #expect(!exported.containsPrivateMembers)
        let thumbprint = (object["a3_thumbprint"] as! [String: Any])["thumbprint_b64u"] as! String
        #expect(try expectedPublic.thumbprint() == thumbprint)
        #expect(try signing.thumbprint() == thumbprint)
        #expect(signing.keyID == thumbprint)
        let validation = object["a5_validation"] as! [String: Any]
        let key = try VerificationKey(jwk: try Vectors.jwk(validation["public_key"]!), algorithm: .eddsa)
        #expect(throws: Never.self) { try UnverifiedJWS(parsing: validation["compact"] as! String).verified(with: key) }
    }

    @Test("RFC 9864: the fully-specified name Ed25519 is read as EdDSA; EdDSA is what Tessera writes")
    func ed25519Alias() throws {
        #expect(JWSAlgorithm(name: "Ed25519") == .eddsa)
        #expect(JWSAlgorithm.eddsa.name == "EdDSA")
        let object = try Vectors.json("rfc/rfc8037_a_ed25519.json")
        var members = try Vectors.jwk(object["a2_public_key"]!).members
        members["alg"] = .string("Ed25519")
        let key = try VerificationKey(jwk: try JWK(members: members))
        #expect(key.algorithm == .eddsa)
        // A token whose header says Ed25519 verifies with the EdDSA key.
        let signing = try SigningKey(jwk: try Vectors.jwk(object["a1_private_key"]!), algorithm: .eddsa)
        let header = Base64URL.encode(Array(#"{"alg":"Ed25519"}"#.utf8))
        let input = header + "." + Base64URL.encode(Array("hello".utf8))
        let token = input + "." + Base64URL.encode(try signing.signature(for: Array(input.utf8)))
        #expect(throws: Never.self) { try UnverifiedJWS(parsing: token).verified(with: key) }
        // The alias never crosses key types.
        expectError(JOSEError.Code.invalidKey) {
            try VerificationKey(
                jwk: try Vectors.jwk([
                    "kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
                ]), algorithm: .eddsa)
        }
    }

    @Test("RFC 7517 A.1: public keys, thumbprints, and the use:enc key refused for signatures")
    func rfc7517PublicKeys() throws {
        let object = try Vectors.json("rfc/rfc7517_a1_public_jwks.json")
        let set = try Vectors.jwks(object["jwks"]!)
        let thumbprints = object["computed_thumbprints_sha256"] as! [String: String]
        for jwk in set.keys { #expect(try jwk.thumbprint() == thumbprints[jwk.keyID!]) }
        let ec = try #require(set.keys.first { $0.keyID == "1" })
        expectError(JOSEError.Code.keyUsageMismatch) { try VerificationKey(jwk: ec, algorithm: .es256) }
        let rsa = try #require(set.keys.first { $0.keyID == "2011-04-29" })
        #expect(try VerificationKey(jwk: rsa).algorithm == .rs256)
        let keySet = try VerificationKeySet(jwks: set)
        #expect(keySet.keys.map(\.keyID) == ["2011-04-29"])
        #expect(keySet.skipped.map(\.error.code) == [.keyUsageMismatch])
    }

    @Test("RFC 7517 A.2: private keys load for signing; a set holding them is refused for verification")
    func rfc7517PrivateKeys() throws {
        let object = try Vectors.json("rfc/rfc7517_a2_private_jwks.json")
        let set = try Vectors.jwks(object["jwks"]!)
        #expect(set.containsPrivateMembers)
        expectError(JOSEError.Code.invalidKeySet) { try VerificationKeySet(jwks: set) }
        let rsa = try #require(set.keys.first { $0.keyType == "RSA" })
        let signing = try SigningKey(jwk: rsa)
        #expect(signing.algorithm == .rs256)
        let publicJWK = try #require(try signing.publicJWK())
        for name in JWK.privateMemberNames { #expect(publicJWK.members[name] == nil) }
        expectError(JOSEError.Code.invalidKey) { try VerificationKey(jwk: rsa) }
        let ec = try #require(set.keys.first { $0.keyType == "EC" })
        expectError(JOSEError.Code.keyUsageMismatch) { try SigningKey(jwk: ec, algorithm: .es256) }
    }

    @Test("RFC 7517 A.3: an AES key-wrap key is not a JWS key; the HMAC key is the RFC 7515 A.1 key")
    func rfc7517SymmetricKeys() throws {
        let object = try Vectors.json("rfc/rfc7517_a3_symmetric_jwks.json")
        let set = try Vectors.jwks(object["jwks"]!)
        expectError(JOSEError.Code.unsupportedAlgorithm) { try VerificationKey(jwk: set.keys[0]) }
        let hmac = try VerificationKey(jwk: set.keys[1], algorithm: .hs256)
        #expect(throws: Never.self) { try UnverifiedJWS(parsing: RFCVectorTests.vectors[0].compact).verified(with: hmac) }
        // Symmetric keys are not taken from a JWK Set unless asked for, and are never published.
        let published = try VerificationKeySet(jwks: set)
        #expect(published.keys.isEmpty)
        #expect(published.skipped.map(\.error.code) == [.keyUsageMismatch, .keyUsageMismatch])
        // Allowed, the HMAC key still needs an algorithm, which the JWK does not name.
        let allowed = try VerificationKeySet(jwks: set, allowSymmetricKeys: true)
        #expect(allowed.keys.isEmpty)
        #expect(allowed.skipped.map(\.error.code) == [.unsupportedAlgorithm, .missingAlgorithm])
        let configured = try VerificationKeySet([hmac])
        #expect(try configured.publicJWKSet().keys.isEmpty)
    }

    @Test("RFC 7517 App. B: x5c is data only; the key is read from n and e")
    func rfc7517X5C() throws {
        let object = try Vectors.json("rfc/rfc7517_b_x5c.json")
        let key = try VerificationKey(jwk: try Vectors.jwk(object["jwk"]!), algorithm: .rs256)
        let exported = try #require(try key.publicJWK())
        #expect(exported.members["x5c"] == nil)
    }

    @Test("RFC 7520 §3: the cookbook keys load, private ones for signing, public ones for verifying")
    func rfc7520Keys() throws {
        let keys = (try Vectors.json("rfc/rfc7520_3_keys.json"))["keys"] as! [String: Any]
        #expect(try VerificationKey(jwk: try Vectors.jwk(keys["section_3_1"]!), algorithm: .es512).algorithm == .es512)
        let ec = try SigningKey(jwk: try Vectors.jwk(keys["section_3_2"]!), algorithm: .es512)
        #expect(ec.keyID == "bilbo.baggins@hobbiton.example")
        #expect(try VerificationKey(jwk: try Vectors.jwk(keys["section_3_3"]!), algorithm: .ps256).algorithm == .ps256)
        let rsa = try SigningKey(jwk: try Vectors.jwk(keys["section_3_4"]!), algorithm: .rs256)
        let jwk = try rsa.privateJWK()
        for name in ["n", "e", "d", "p", "q", "dp", "dq", "qi"] {
            #expect(jwk.members[name] == (try Vectors.jwk(keys["section_3_4"]!)).members[name], "\(name)")
        }
        #expect(try SigningKey(jwk: try Vectors.jwk(keys["section_3_5"]!), algorithm: .hs256).isSymmetric)
    }

    @Test("RFC 7797 §4: the ordinary HS256 example verifies; b64:false with crit is rejected")
    func rfc7797() throws {
        let object = try Vectors.json("rfc/rfc7797_4_b64_false.json")
        let key = try VerificationKey(jwk: try Vectors.jwk(object["key"]!), algorithm: .hs256)
        let cases = object["cases"] as! [[String: Any]]
        #expect(throws: Never.self) { try UnverifiedJWS(parsing: cases[0]["compact"] as! String).verified(with: key) }
        let detached = cases[1]["compact_detached"] as! String
        expectError(JOSEError.Code.unsupportedCriticalHeader) { try UnverifiedJWS(parsing: detached) }
        // With the payload put back in (unencoded, as RFC 7797 would sign it) the header still decides.
        let parts = detached.split(separator: ".", omittingEmptySubsequences: false)
        let attached = parts[0] + "." + Base64URL.encode(Array((object["payload"] as! String).utf8)) + "." + parts[2]
        expectError(JOSEError.Code.unsupportedCriticalHeader) { try UnverifiedJWS(parsing: String(attached)).verified(with: key) }
    }
}
