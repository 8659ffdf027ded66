import Foundation
import Testing

@testable import TesseraJOSE

@Suite("RFC 7515: compact JWS parsing, header rules, signing")
struct JWSTests {
    static let key = try! SigningKey.generate(.es256)
    static let keys = try! VerificationKeySet([try! key.verificationKey()])

    /// A token with the given header JSON and payload, signed with `key` over exactly those bytes.
    static func token(header: String, payload: String = #"{"sub":"x"}"#, key: SigningKey = JWSTests.key) throws -> String {
        let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(payload.utf8))
        return input + "." + Base64URL.encode(try key.signature(for: Array(input.utf8)))
    }

    @Test("the signer writes alg, kid and typ, and its tokens verify by kid")
    func signer() throws {
        let signer = JWSSigner(key: Self.key, type: "at+jwt")
        var claims = JSONObject()
        claims["iss"] = .string("https://issuer.example")
        claims["exp"] = .number(JSONNumber(1_700_000_000))
        let token = try signer.sign(claims: claims)
        let parsed = try UnverifiedJWS(parsing: token)
        #expect(parsed.header.fields.jsonString == #"{"alg":"ES256","kid":"\#(Self.key.keyID!)","typ":"at+jwt"}"#)
        let verified = try parsed.verified(using: Self.keys)
        #expect(try verified.payloadObject() == claims)
        #expect(verified.keyID == Self.key.keyID)
    }

    @Test("RFC 7515 §7.1: anything but three segments is malformed (JWE, JSON serialization, truncation)")
    func segments() throws {
        let token = try JWSSigner(key: Self.key).sign(payload: Array("x".utf8))
        let parts = token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        for bad in [
            parts[0], parts[0] + "." + parts[1], token + ".", token + "." + parts[2], "a.b.c.d.e", "",
            #"{"payload":"eA","signatures":[]}"#, String(repeating: ".", count: 100_00),
        ] {
            expectError(JOSEError.Code.malformedToken) { try UnverifiedJWS(parsing: bad) }
        }
    }

    @Test("a token over the size bound is rejected before decoding; the bound is configurable")
    func sizeBound() throws {
        let payload = String(repeating: "a", count: 20_000)
        let big = try JWSSigner(key: Self.key).sign(payload: Array(payload.utf8))
        expectError(JOSEError.Code.tokenTooLarge) { try UnverifiedJWS(parsing: big) }
        #expect(throws: Never.self) { try UnverifiedJWS(parsing: big, maximumSize: 64 * 1024).verified(using: Self.keys) }
        // Garbage of the same size is refused by size too, not by content.
        expectError(JOSEError.Code.tokenTooLarge) { try UnverifiedJWS(parsing: String(repeating: "!", count: 16 * 1024 + 1)) }
        expectError(JOSEError.Code.tokenTooLarge) { try UnverifiedJWS(parsing: Array(repeating: UInt8(ascii: "."), count: 100_000)) }
    }

    @Test("RFC 7515 §4.1.1: alg none in any case, missing, null, an array, unknown or lower-case is refused")
    func algValues() throws {
        for header in [
            #"{"alg":"none"}"#, #"{"alg":"None"}"#, #"{"alg":"NONE"}"#, #"{"alg":"nOnE"}"#, #"{"typ":"JWT"}"#,
            #"{"alg":null}"#, #"{"alg":["ES256"]}"#, #"{"alg":"ES999"}"#, #"{"alg":"es256"}"#, #"{"alg":""}"#,
        ] {
            let token = Base64URL.encode(Array(header.utf8)) + ".e30."
            expectError(JOSEError.Code.unsupportedAlgorithm, "\(header)") { try UnverifiedJWS(parsing: token) }
        }
    }

    @Test("RFC 7515 §4.1.11: any crit is refused (no extension is implemented), in every shape")
    func crit() throws {
        for header in [
            #"{"alg":"ES256","crit":["x-foo"],"x-foo":1}"#, #"{"alg":"ES256","crit":[]}"#,
            #"{"alg":"ES256","crit":"x-foo"}"#, #"{"alg":"ES256","crit":["alg"]}"#,
            #"{"alg":"ES256","crit":["exp"]}"#,
        ] {
            expectError(JOSEError.Code.unsupportedCriticalHeader, "\(header)") { try UnverifiedJWS(parsing: try Self.token(header: header)) }
        }
    }

    @Test("RFC 7797: b64 false is refused with or without crit; b64 true is harmless")
    func b64() throws {
        expectError(JOSEError.Code.unsupportedCriticalHeader) { try UnverifiedJWS(parsing: try Self.token(header: #"{"alg":"ES256","b64":false}"#)) }
        expectError(JOSEError.Code.unsupportedCriticalHeader) { try UnverifiedJWS(parsing: try Self.token(header: #"{"alg":"ES256","b64":"no"}"#)) }
        let token = try Self.token(header: #"{"alg":"ES256","kid":"\#(Self.key.keyID!)","b64":true}"#)
        #expect(throws: Never.self) { try UnverifiedJWS(parsing: token).verified(using: Self.keys) }
    }

    @Test("RFC 7515 §5.2: a header with duplicate members is refused even when the signature is valid")
    func duplicateHeaderMembers() throws {
        let token = try Self.token(header: #"{"alg":"none","alg":"ES256","kid":"\#(Self.key.keyID!)"}"#)
        expectError(JOSEError.Code.malformedHeader) { try UnverifiedJWS(parsing: token) }
        // And a payload with duplicate claims verifies as bytes but is refused when read as an object.
        let dup = try Self.token(header: #"{"alg":"ES256","kid":"\#(Self.key.keyID!)"}"#, payload: #"{"sub":"a","sub":"b"}"#)
        let verified = try UnverifiedJWS(parsing: dup).verified(using: Self.keys)
        expectError(JOSEError.Code.invalidJSON) { try verified.payloadObject() }
    }

    @Test("header: not an object, a BOM, invalid UTF-8, a non-string kid or typ are malformed")
    func headerShape() throws {
        for header in [
            Array(#"["ES256"]"#.utf8), [0xEF, 0xBB, 0xBF] + Array(#"{"alg":"ES256"}"#.utf8),
            Array(#"{"alg":"ES256","kid":""#.utf8) + [0xFF] + Array(#""}"#.utf8),
            Array(#"{"alg":"ES256","kid":7}"#.utf8), Array(#"{"alg":"ES256","typ":{}}"#.utf8), Array("".utf8),
        ] {
            let token = Base64URL.encode(header) + ".e30.AAAA"
            expectError(JOSEError.Code.malformedHeader) { try UnverifiedJWS(parsing: token) }
        }
    }

    @Test("RFC 8725 §3.10: jwk, jku, x5u and x5c headers are never used to find a key")
    func embeddedKeysIgnored() throws {
        let attacker = try SigningKey.generate(.es256)
        let attackerJWK = try #require(try attacker.publicJWK()).jsonString
        for extra in [
            #""jwk":\#(attackerJWK)"#, #""jku":"http://127.0.0.1:9/jwks.json""#, #""x5u":"http://127.0.0.1:9/c.pem""#,
            #""x5c":["MIIB"]"#,
        ] {
            // With the trusted kid: the attacker's signature does not verify with the trusted key.
            let withKid = try Self.token(header: #"{"alg":"ES256","kid":"\#(Self.key.keyID!)",\#(extra)}"#, key: attacker)
            expectError(JOSEError.Code.invalidSignature) { try UnverifiedJWS(parsing: withKid).verified(using: Self.keys) }
            // With the attacker's kid: no such trusted key.
            let ownKid = try Self.token(header: #"{"alg":"ES256","kid":"\#(attacker.keyID!)",\#(extra)}"#, key: attacker)
            expectError(JOSEError.Code.unknownKey) { try UnverifiedJWS(parsing: ownKid).verified(using: Self.keys) }
        }
    }

    @Test("key selection: exact kid, no fallback; without kid exactly one key of that alg")
    func keySelection() throws {
        let second = try SigningKey.generate(.es256)
        let rsa = try SigningKey.generate(.rs256)
        let set = try VerificationKeySet([try Self.key.verificationKey(), try second.verificationKey(), try rsa.verificationKey()])
        expectError(JOSEError.Code.unknownKey) {
            try UnverifiedJWS(parsing: try Self.token(header: #"{"alg":"ES256","kid":"other"}"#)).verified(using: set)
        }
        expectError(JOSEError.Code.unknownKey) {
            try UnverifiedJWS(parsing: try Self.token(header: #"{"alg":"ES256","kid":"../../dev/null"}"#)).verified(using: set)
        }
        expectError(JOSEError.Code.ambiguousKey) { try UnverifiedJWS(parsing: try Self.token(header: #"{"alg":"ES256"}"#)).verified(using: set) }
        let rsaNoKid = try Self.token(header: #"{"alg":"RS256"}"#, key: rsa)
        #expect(throws: Never.self) { try UnverifiedJWS(parsing: rsaNoKid).verified(using: set) }
        // The RSA key's kid with an ES256 header: the key decides, not the header.
        let confused = try Self.token(header: #"{"alg":"ES256","kid":"\#(rsa.keyID!)"}"#)
        expectError(JOSEError.Code.algorithmMismatch) { try UnverifiedJWS(parsing: confused).verified(using: set) }
        expectError(JOSEError.Code.invalidKeySet) { try VerificationKeySet([try Self.key.verificationKey(), try Self.key.verificationKey()]) }
        expectError(JOSEError.Code.invalidKeySet) {
            try VerificationKeySet([try Self.key.verificationKey(), try SigningKey.generate(.hs256).verificationKey()])
        }
    }

    @Test("RFC 7518 §3.4: ECDSA signatures must be r‖s of exactly 64 bytes; DER or (0, 0) is invalid")
    func ecdsaEncoding() throws {
        let header = #"{"alg":"ES256","kid":"\#(Self.key.keyID!)"}"#
        let token = try Self.token(header: header)
        let parts = token.split(separator: ".").map(String.init)
        let signature = try Base64URL.decode(parts[2])
        let der = try #require(signature.withUnsafeBytes { ECDSASignature.der(jws: $0, size: 32) })
        for bad in [der, Array(signature.dropLast()), signature + [0], [UInt8](repeating: 0, count: 64), []] {
            let forged = parts[0] + "." + parts[1] + "." + Base64URL.encode(bad)
            expectError(JOSEError.Code.invalidSignature) { try UnverifiedJWS(parsing: forged).verified(using: Self.keys) }
        }
    }

    @Test("a signature copied from another token does not verify")
    func copiedSignature() throws {
        let signer = JWSSigner(key: Self.key)
        let a = try signer.sign(payload: Array(#"{"sub":"a"}"#.utf8)).split(separator: ".").map(String.init)
        let b = try signer.sign(payload: Array(#"{"sub":"b"}"#.utf8)).split(separator: ".").map(String.init)
        expectError(JOSEError.Code.invalidSignature) { try UnverifiedJWS(parsing: a[0] + "." + b[1] + "." + a[2]).verified(using: Self.keys) }
    }
}

@Suite("README")
struct ReadmeExampleTests {
    @Test("the README's TesseraJOSE example runs as written")
    func readmeExample() throws {
        let key = try SigningKey.generate(.es256)
        let signer = JWSSigner(key: key, type: "at+jwt")
        let token = try signer.sign(claims: JSONObject(["sub": .string("alice"), "exp": .number(JSONNumber(1_900_000_000))]))
        let jwks = try JWKSet(publicKeysOf: [key]).jsonString
        let trusted = try VerificationKeySet(jwks: try JWKSet(json: jwks))
        let verified = try UnverifiedJWS(parsing: token).verified(using: trusted)
        let claims = try verified.payloadObject()
        #expect(claims["sub"] == .string("alice"))
    }
}
