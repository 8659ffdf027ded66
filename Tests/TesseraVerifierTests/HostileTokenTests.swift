import Foundation
import TesseraJOSE
import Testing

@testable import TesseraVerifier

/// One test per attack the verifier must refuse (RFC 8725 §2, THREATS.md section A), built with
/// fresh keys so they do not depend on the corpus file.
@Suite("Hostile tokens, one test per attack")
struct HostileTokenTests {
    static let rsa = try! SigningKey.generate(.rs256)
    static let ec = try! SigningKey.generate(.es256)
    static let factory = TokenFactory(key: ec)
    static let verifier = try! AccessTokenVerifier(
        configuration: factory.configuration(),
        keys: try! VerificationKeySet([try! rsa.verificationKey(), try! ec.verificationKey()]))

    static func reject(_ token: String, _ code: TokenVerificationError.Code, sourceLocation: SourceLocation = #_sourceLocation) async {
        let result = await outcome(verifier, token)
        #expect(result == code, "expected \(code), got \(result?.rawValue ?? "accept")", sourceLocation: sourceLocation)
    }

    @Test("baseline: the unmodified token is accepted with its claims")
    func baseline() async throws {
        let token = try await Self.verifier.verify(try Self.factory.token())
        #expect(token.subject == "alice" && token.clientID == "app" && token.scopes == ["read", "write"])
        #expect(token.audience == ["https://rs.example"] && token.tokenID == "jti-1" && token.keyID == Self.ec.keyID)
    }

    @Test("A1 RFC 8725 §2.1: alg none in any case, with or without a signature")
    func algNone() async throws {
        for name in ["none", "None", "NONE", "nOnE"] {
            let header = #"{"alg":"\#(name)","typ":"at+jwt","kid":"\#(Self.ec.keyID!)"}"#
            let unsigned = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Self.factory.standardClaims.jsonBytes) + "."
            await Self.reject(unsigned, .unsupportedAlgorithm)
            await Self.reject(unsigned + "c2ln", .unsupportedAlgorithm)
        }
    }

    @Test("A2 HS256 keyed with the RSA or EC public key's bytes (PEM, DER, JWK, modulus, point)")
    func algorithmConfusion() async throws {
        let rsaPEM = try Self.rsa.verificationKey().pemRepresentation()
        let ecJWK = try #require(try Self.ec.publicJWK())
        let secrets: [[UInt8]] = [
            Array(rsaPEM.utf8), Array(rsaPEM.utf8.dropLast()), Array((try Self.ec.verificationKey().pemRepresentation()).utf8),
            Array(ecJWK.jsonString.utf8), try Base64URL.decode(ecJWK.members["x"]!.stringValue!) + [UInt8](repeating: 0, count: 32),
        ]
        for (index, secret) in secrets.enumerated() {
            let hmac = try SigningKey(secret: secret.count < 32 ? secret + [UInt8](repeating: 0, count: 32) : secret, algorithm: .hs256)
            for kid in [Self.rsa.keyID!, Self.ec.keyID!] {
                let token = try Self.factory.token(header: #"{"alg":"HS256","typ":"at+jwt","kid":"\#(kid)"}"#, signer: hmac)
                await Self.reject(token, .algorithmNotAllowed)
            }
            // Even with HS256 allowed, the asymmetric key cannot act as an HMAC secret.
            var configuration = Self.factory.configuration()
            configuration.allowedAlgorithms = Set(JWSAlgorithm.all)
            let permissive = try AccessTokenVerifier(configuration: configuration, keys: try VerificationKeySet([try Self.ec.verificationKey()]))
            let token = try Self.factory.token(header: #"{"alg":"HS256","typ":"at+jwt","kid":"\#(Self.ec.keyID!)"}"#, signer: hmac)
            #expect(await outcome(permissive, token) == .algorithmMismatch, "secret \(index)")
        }
    }

    @Test("A5 kid with path traversal, SQL, a NoSQL operator or 20,000 characters")
    func kidInjection() async throws {
        for kid in ["../../../../dev/null", "x' UNION SELECT 'secret'-- ", "/etc/passwd", "\\u0000"] {
            await Self.reject(try Self.factory.token(header: #"{"alg":"ES256","typ":"at+jwt","kid":"\#(kid)"}"#), .unknownKey)
        }
        await Self.reject(try Self.factory.token(header: #"{"alg":"ES256","typ":"at+jwt","kid":{"$ne":""}}"#), .malformedHeader)
        let huge = String(repeating: "k", count: 20_000)
        await Self.reject(try Self.factory.token(header: #"{"alg":"ES256","typ":"at+jwt","kid":"\#(huge)"}"#), .tokenTooLarge)
        let long = String(repeating: "k", count: 5_000)
        do {
            _ = try await Self.verifier.verify(try Self.factory.token(header: #"{"alg":"ES256","typ":"at+jwt","kid":"\#(long)"}"#))
        } catch let error as TokenVerificationError {
            #expect(error.code == .unknownKey && !error.description.contains(long.prefix(100)), "the kid is not echoed")
        }
    }

    @Test("A6–A8 a jwk, jku, x5u or x5c header naming the attacker's key")
    func embeddedKeys() async throws {
        let attacker = try SigningKey.generate(.es256)
        let attackerJWK = try #require(try attacker.publicJWK()).jsonString
        for extra in [
            #""jwk":\#(attackerJWK)"#, #""jku":"http://127.0.0.1:9/jwks.json""#,
            #""x5u":"http://127.0.0.1:9/cert.pem""#, #""x5c":["MIIBszCCAVmgAwIBAgIU"]"#,
        ] {
            let trustedKid = try Self.factory.token(header: #"{"alg":"ES256","typ":"at+jwt","kid":"\#(Self.ec.keyID!)",\#(extra)}"#, signer: attacker)
            await Self.reject(trustedKid, .invalidSignature)
            let ownKid = try Self.factory.token(header: #"{"alg":"ES256","typ":"at+jwt","kid":"\#(attacker.keyID!)",\#(extra)}"#, signer: attacker)
            await Self.reject(ownKid, .unknownKey)
        }
    }

    @Test("A9 an unknown crit extension")
    func unknownCrit() async throws {
        let token = try Self.factory.token(header: #"{"alg":"ES256","typ":"at+jwt","kid":"\#(Self.ec.keyID!)","crit":["exp"],"exp":1}"#)
        await Self.reject(token, .unsupportedCriticalHeader)
    }

    @Test("A23 expired, expiring now, not yet valid, issued in the future; leeway applies to each")
    func timeClaims() async throws {
        let now = Self.factory.now
        await Self.reject(try Self.factory.token { $0["exp"] = .number(JSONNumber(now - 1)) }, .expired)
        await Self.reject(try Self.factory.token { $0["exp"] = .number(JSONNumber(now)) }, .expired)
        #expect(await outcome(Self.verifier, try Self.factory.token { $0["exp"] = .number(JSONNumber(now + 1)) }) == nil)
        await Self.reject(try Self.factory.token { $0["nbf"] = .number(JSONNumber(now + 1)) }, .notYetValid)
        #expect(await outcome(Self.verifier, try Self.factory.token { $0["nbf"] = .number(JSONNumber(now)) }) == nil)
        await Self.reject(try Self.factory.token { $0["iat"] = .number(JSONNumber(now + 3600)) }, .issuedInFuture)
        let lenient = try Self.factory.verifier(leeway: 60)
        #expect(await outcome(lenient, try Self.factory.token { $0["exp"] = .number(JSONNumber(now - 59)) }) == nil)
        #expect(await outcome(lenient, try Self.factory.token { $0["exp"] = .number(JSONNumber(now - 60)) }) == .expired)
        #expect(await outcome(lenient, try Self.factory.token { $0["nbf"] = .number(JSONNumber(now + 60)) }) == nil)
        #expect(await outcome(lenient, try Self.factory.token { $0["iat"] = .number(JSONNumber(now + 61)) }) == .issuedInFuture)
        for bad: JSONValue in [
            .string("1700000600"), .bool(true), .null, try JSONValue(parsing: "9223372036854775808"),
            try JSONValue(parsing: "1e30"), try JSONValue(parsing: "-1e300"),
        ] {
            await Self.reject(try Self.factory.token { $0["exp"] = bad }, .invalidClaim)
        }
    }

    @Test("A25 wrong iss (other, trailing slash, case) and wrong aud (other, substring, empty, number)")
    func issuerAndAudience() async throws {
        for issuer in ["https://evil.example", "https://issuer.example/", "https://ISSUER.example"] {
            await Self.reject(try Self.factory.token { $0["iss"] = .string(issuer) }, .invalidIssuer)
        }
        for audience: JSONValue in [.string("https://other.example"), .string("https://rs.example.evil"), .array([])] {
            await Self.reject(try Self.factory.token { $0["aud"] = audience }, .invalidAudience)
        }
        await Self.reject(try Self.factory.token { $0["aud"] = .number(JSONNumber(1)) }, .invalidClaim)
        #expect(await outcome(Self.verifier, try Self.factory.token { $0["aud"] = .array([.string("x"), .string("https://rs.example")]) }) == nil)
    }

    @Test("A24 typ JWT, missing or padded typ is refused; application/at+jwt and AT+JWT are accepted")
    func type() async throws {
        let kid = Self.ec.keyID!
        for typ in [#","typ":"JWT""#, "", #","typ":"at+jwt ""#, #","typ":"application/jwt""#] {
            await Self.reject(try Self.factory.token(header: #"{"alg":"ES256","kid":"\#(kid)"\#(typ)}"#), .invalidType)
        }
        for typ in ["application/at+jwt", "AT+JWT"] {
            #expect(await outcome(Self.verifier, try Self.factory.token(header: #"{"alg":"ES256","kid":"\#(kid)","typ":"\#(typ)"}"#)) == nil)
        }
    }

    @Test("A24 an OpenID Connect ID token presented as an access token")
    func idToken() async throws {
        let claims = JSONObject([
            "iss": .string("https://issuer.example"), "sub": .string("alice"), "aud": .string("app"),
            "exp": .number(JSONNumber(Self.factory.now + 600)), "iat": .number(JSONNumber(Self.factory.now)),
            "nonce": .string("n-0S6_WzA2Mj"),
        ])
        await Self.reject(
            try Self.factory.token(header: #"{"alg":"ES256","typ":"JWT","kid":"\#(Self.ec.keyID!)"}"#, payload: claims.jsonString), .invalidType)
    }

    @Test("a valid signature from an untrusted key carrying a trusted kid")
    func untrustedKeyTrustedKid() async throws {
        let impostor = try SigningKey.generate(.es256)
        await Self.reject(try Self.factory.token(signer: impostor), .invalidSignature)
    }

    @Test("A15 truncated and extra segments")
    func segments() async throws {
        let token = try Self.factory.token()
        let parts = token.split(separator: ".").map(String.init)
        await Self.reject(parts[0] + "." + parts[1], .malformedToken)
        await Self.reject(parts[0] + "." + parts[1] + ".", .invalidSignature)
        await Self.reject(token + "." + parts[2], .malformedToken)
        await Self.reject(token + ".", .malformedToken)
        // 86 base64url characters less 2 still decode (63 bytes): the length check refuses it.
        await Self.reject(String(token.dropLast(2)), .invalidSignature)
    }

    @Test("A14 bad base64url: padding, standard alphabet, whitespace, trailing bits")
    func base64() async throws {
        let token = try Self.factory.token()
        await Self.reject(token + "=", .invalidBase64URL)
        await Self.reject(token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/") + "+", .invalidBase64URL)
        await Self.reject(" " + token, .invalidBase64URL)
        await Self.reject(token.replacingOccurrences(of: ".", with: ". "), .invalidBase64URL)
    }

    @Test("A11 duplicate claims (sub, exp) and duplicate header members")
    func duplicates() async throws {
        let claims = Self.factory.standardClaims.jsonString
        await Self.reject(try Self.factory.token(payload: String(claims.dropLast()) + #","sub":"mallory"}"#), .malformedClaims)
        await Self.reject(try Self.factory.token(payload: String(claims.dropLast()) + #","exp":99999999999}"#), .malformedClaims)
        await Self.reject(
            try Self.factory.token(header: #"{"alg":"none","alg":"ES256","typ":"at+jwt","kid":"\#(Self.ec.keyID!)"}"#), .malformedHeader)
    }

    @Test("scope must be a space-separated string of scope tokens")
    func scope() async throws {
        await Self.reject(try Self.factory.token { $0["scope"] = .array([.string("read")]) }, .invalidClaim)
        await Self.reject(try Self.factory.token { $0["scope"] = .string("read  write") }, .invalidClaim)
        await Self.reject(try Self.factory.token { $0["scope"] = .string("read\"x") }, .invalidClaim)
        let token = try await Self.verifier.verify(try Self.factory.token { $0["scope"] = nil })
        #expect(token.scopes.isEmpty)
    }

    @Test("A26 RFC 9068 §2.2: each required claim missing, and each with the wrong type")
    func requiredClaims() async throws {
        for name in ClaimsValidator.requiredClaims {
            await Self.reject(try Self.factory.token { $0[name] = nil }, .missingClaim)
        }
        for name in ["iss", "sub", "client_id", "jti"] {
            await Self.reject(try Self.factory.token { $0[name] = .number(JSONNumber(1)) }, .invalidClaim)
        }
    }

    @Test("A13 huge tokens and deep nesting are refused before signature work")
    func huge() async throws {
        await Self.reject(String(repeating: "a", count: 200_000), .tokenTooLarge)
        await Self.reject(String(repeating: ".", count: 100_000), .tokenTooLarge)
        let deep = String(repeating: "[", count: 3000) + String(repeating: "]", count: 3000)
        let claims = Self.factory.standardClaims.jsonString
        await Self.reject(try Self.factory.token(payload: String(claims.dropLast()) + #","x":"# + deep + "}"), .malformedClaims)
    }

    @Test("A18 ECDSA (0, 0) and (n, n) psychic signatures")
    func psychic() async throws {
        let parts = try Self.factory.token().split(separator: ".").map(String.init)
        let order: [UInt8] = try [UInt8](hex: "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")
        for signature in [[UInt8](repeating: 0, count: 64), order + order] {
            await Self.reject(parts[0] + "." + parts[1] + "." + Base64URL.encode(signature), .invalidSignature)
        }
    }

    @Test("a signature copied from another token")
    func copiedSignature() async throws {
        let a = try Self.factory.token().split(separator: ".").map(String.init)
        let b = try Self.factory.token { $0["sub"] = .string("mallory") }.split(separator: ".").map(String.init)
        await Self.reject(b[0] + "." + b[1] + "." + a[2], .invalidSignature)
    }

    @Test("A12 nested token (cty JWT)")
    func nested() async throws {
        await Self.reject(try Self.factory.token(header: #"{"alg":"ES256","typ":"at+jwt","cty":"JWT","kid":"\#(Self.ec.keyID!)"}"#), .nestedToken)
    }

    @Test("A17 a high-s ECDSA twin verifies (ECDSA is malleable); nothing in AccessToken is derived from signature bytes")
    func highS() async throws {
        let token = try Self.factory.token()
        let parts = token.split(separator: ".").map(String.init)
        let signature = try Base64URL.decode(parts[2])
        let n = try [UInt8](hex: "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")
        let twinS = subtract(n, Array(signature[32...]))
        let twin = parts[0] + "." + parts[1] + "." + Base64URL.encode(Array(signature[..<32]) + twinS)
        let original = try await Self.verifier.verify(token)
        let malleated = try await Self.verifier.verify(twin)
        #expect(original.tokenID == malleated.tokenID, "replay protection keys on jti, which the twin shares")
    }
}

/// a − b for big-endian unsigned integers of equal length (a ≥ b).
func subtract(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
    var result = [UInt8](repeating: 0, count: a.count)
    var borrow = 0
    for index in stride(from: a.count - 1, through: 0, by: -1) {
        var value = Int(a[index]) - Int(b[index]) - borrow
        borrow = value < 0 ? 1 : 0
        if value < 0 { value += 256 }
        result[index] = UInt8(value)
    }
    return result
}
