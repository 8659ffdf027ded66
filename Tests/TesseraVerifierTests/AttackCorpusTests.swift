import Foundation
import TesseraJOSE
import Testing

@testable import TesseraVerifier

/// Every case of `shared/vectors/derived/jwt_attack_cases.json`, configured as its `verifier_profile`
/// (and `hmac_profile`) says. A rejection of a case whose signature is genuinely valid
/// (`signature_verifies_with: trusted:…`) must come from the policy check its `why` names: the test
/// asserts the exact error code of every rejection.
@Suite("Hostile-token corpus (jwt_attack_cases.json)")
struct AttackCorpusTests {
    /// The expected code of each rejected case.
    static let expectedCodes: [String: TokenVerificationError.Code] = [
        // Unsecured or unusable alg values: refused when the header is read.
        "alg-none": .unsupportedAlgorithm, "alg-None": .unsupportedAlgorithm, "alg-NONE": .unsupportedAlgorithm,
        "alg-nOnE": .unsupportedAlgorithm, "alg-none-with-signature": .unsupportedAlgorithm, "alg-missing": .unsupportedAlgorithm,
        "alg-null": .unsupportedAlgorithm, "alg-array": .unsupportedAlgorithm, "alg-unknown": .unsupportedAlgorithm,
        "alg-lowercase": .unsupportedAlgorithm,
        // A valid signature under another algorithm of the same key, or an ES256 header on the RSA kid.
        "alg-rs512-on-rs256-key": .algorithmMismatch, "alg-ps256-on-rs256-key": .algorithmMismatch,
        "alg-es256-on-rsa-kid": .algorithmMismatch,
        // HS256 is not on the default (asymmetric) allow-list: the public key never becomes a secret.
        "alg-confusion-hs256-rsa-spki-pem": .algorithmNotAllowed, "alg-confusion-hs256-rsa-spki-pem-no-trailing-newline": .algorithmNotAllowed,
        "alg-confusion-hs256-rsa-pkcs1-pem": .algorithmNotAllowed, "alg-confusion-hs256-rsa-spki-der": .algorithmNotAllowed,
        "alg-confusion-hs256-rsa-jwk-json": .algorithmNotAllowed, "alg-confusion-hs256-rsa-modulus-bytes": .algorithmNotAllowed,
        "alg-confusion-hs256-ec-spki-pem": .algorithmNotAllowed, "alg-confusion-hs256-ec-uncompressed-point": .algorithmNotAllowed,
        "alg-confusion-hs256-ed25519-raw-x": .algorithmNotAllowed,
        "kid-path-traversal": .algorithmNotAllowed, "kid-sql-injection": .algorithmNotAllowed,
        // Signatures that are not the JWS encoding or not valid at all.
        "es256-der-signature": .invalidSignature, "es256-psychic-r0-s0": .invalidSignature, "es256-psychic-rN-sN": .invalidSignature,
        "es256-psychic-r0-s1": .invalidSignature, "es256-psychic-r1-s0": .invalidSignature, "es256-sig-65-bytes": .invalidSignature,
        "es256-sig-63-bytes": .invalidSignature, "rs256-sig-prefixed-zero": .invalidSignature, "rs256-sig-plus-modulus": .invalidSignature,
        "sig-empty-rs256": .invalidSignature,
        // Non-canonical base64url (the signature would verify under a lenient decoder).
        "b64-padding-in-signature": .invalidBase64URL, "b64-standard-alphabet": .invalidBase64URL,
        "b64-noncanonical-trailing-bits": .invalidBase64URL, "b64-whitespace": .invalidBase64URL, "b64-invalid-char": .invalidBase64URL,
        "structure-leading-space": .invalidBase64URL,
        // Shape.
        "structure-two-segments": .malformedToken, "structure-four-segments": .malformedToken,
        "structure-jwe-five-segments": .malformedToken, "structure-many-dots": .tokenTooLarge,
        "structure-json-serialization": .malformedToken,
        "structure-header-not-object": .malformedHeader, "structure-header-not-json": .malformedHeader,
        "structure-header-bom": .malformedHeader, "structure-header-invalid-utf8": .malformedHeader,
        "dup-header-alg": .malformedHeader, "kid-not-string": .malformedHeader,
        "structure-payload-array": .malformedClaims, "structure-payload-not-json": .malformedClaims,
        "dup-claim-sub": .malformedClaims, "dup-claim-exp": .malformedClaims, "deep-nesting": .malformedClaims,
        "oversized-token": .tokenTooLarge, "kid-huge": .tokenTooLarge,
        "crit-unknown": .unsupportedCriticalHeader, "crit-empty": .unsupportedCriticalHeader, "crit-not-array": .unsupportedCriticalHeader,
        "crit-registered-name": .unsupportedCriticalHeader, "crit-listed-but-absent": .unsupportedCriticalHeader,
        // The RFC 7797 payload "$.02" is sent unencoded: its dot makes four segments, refused before the header.
        "crit-b64-false": .malformedToken,
        // Keys from the token are never used: the trusted key does not verify the attacker's signature,
        // and an attacker's own kid is simply unknown.
        // Without a kid, the one trusted key of the header's alg is chosen, and the attacker's signature fails it.
        "hdr-jwk-attacker-key": .invalidSignature, "hdr-jwk-with-trusted-kid": .invalidSignature,
        "hdr-jku-attacker": .unknownKey, "hdr-x5u-attacker": .unknownKey, "hdr-x5c-self-signed": .invalidSignature,
        "kid-unknown": .unknownKey,
        // Claims (RFC 9068 §4, RFC 7519 §4.1).
        "exp-past": .expired, "exp-equals-now": .expired, "exp-negative": .expired,
        "exp-missing": .missingClaim, "exp-string": .invalidClaim, "exp-bool": .invalidClaim, "exp-null": .invalidClaim,
        "exp-2pow63": .invalidClaim, "exp-1e30": .invalidClaim,
        "nbf-future": .notYetValid, "iat-future": .issuedInFuture, "iat-missing": .missingClaim,
        "iss-mismatch": .invalidIssuer, "iss-trailing-slash": .invalidIssuer, "iss-case": .invalidIssuer, "iss-missing": .missingClaim,
        "aud-mismatch": .invalidAudience, "aud-missing": .missingClaim, "aud-empty-array": .invalidAudience,
        "aud-substring": .invalidAudience, "aud-number": .invalidClaim,
        "sub-missing": .missingClaim, "client-id-missing": .missingClaim, "jti-missing": .missingClaim,
        "typ-jwt": .invalidType, "typ-missing": .invalidType, "typ-trailing-space": .invalidType, "typ-in-payload-only": .invalidType,
        "id-token-as-access-token": .invalidType, "nested-cty-jwt": .nestedToken,
    ]

    static let hmacExpectedCodes: [String: TokenVerificationError.Code] = [
        "hs256-truncated-16": .invalidSignature, "hs256-truncated-1": .invalidSignature, "hs256-empty-mac": .invalidSignature,
        "hs256-mac-plus-byte": .invalidSignature, "hs256-last-bit-flipped": .invalidSignature,
        "hs384-on-hs256-key": .algorithmNotAllowed, "hs-none": .unsupportedAlgorithm,
    ]

    static func verifier(profile: [String: Any], keys: VerificationKeySet, algorithms: Set<JWSAlgorithm>) throws -> AccessTokenVerifier {
        var configuration = AccessTokenVerifier.Configuration(issuer: profile["issuer"] as! String, audience: profile["audience"] as! String)
        configuration.leeway = TimeInterval(profile["leeway_seconds"] as! Int)
        configuration.clock = .fixed(Date(timeIntervalSince1970: TimeInterval(profile["now"] as! Int)))
        configuration.allowedAlgorithms = algorithms
        return try AccessTokenVerifier(configuration: configuration, keys: keys)
    }

    @Test("all 112 cases end as expected; every rejection with the check its why names")
    func corpus() async throws {
        let file = try Vectors.json("derived/jwt_attack_cases.json")
        let profile = file["verifier_profile"] as! [String: Any]
        let keys = try VerificationKeySet(jwks: try JWKSet(jsonBytes: try Vectors.data(profile["trusted_jwks"]!)))
        #expect(keys.keys.count == 3 && keys.skipped.isEmpty)
        let verifier = try Self.verifier(profile: profile, keys: keys, algorithms: Set(JWSAlgorithm.asymmetric))
        let cases = file["cases"] as! [[String: Any]]
        #expect(cases.count == 112)
        var accepted = 0
        var rejected = 0
        for testCase in cases {
            let id = testCase["id"] as! String
            let result = await outcome(verifier, testCase["token"] as! String)
            if testCase["expected"] as! String == "accept" {
                accepted += 1
                #expect(result == nil, "\(id) should be accepted, got \(result?.rawValue ?? "")")
            } else {
                rejected += 1
                let expected = try #require(Self.expectedCodes[id], "no expected code for \(id)")
                #expect(result == expected, "\(id): expected \(expected), got \(result?.rawValue ?? "accept")")
            }
        }
        #expect(accepted == 12 && rejected == 100)
        #expect(Set(Self.expectedCodes.keys).count == rejected)
    }

    @Test("the 8 HMAC cases, with the RFC 7515 A.1 secret pinned to HS256 and HS256 allowed")
    func hmacCorpus() async throws {
        let file = try Vectors.json("derived/jwt_attack_cases.json")
        let profile = file["hmac_profile"] as! [String: Any]
        let key = try VerificationKey(jwk: try JWK(jsonBytes: try Vectors.data(profile["key"]!)))
        #expect(key.algorithm == .hs256)
        let verifier = try Self.verifier(profile: profile, keys: try VerificationKeySet([key]), algorithms: [.hs256])
        let cases = file["hmac_cases"] as! [[String: Any]]
        #expect(cases.count == 8)
        for testCase in cases {
            let id = testCase["id"] as! String
            let result = await outcome(verifier, testCase["token"] as! String)
            if testCase["expected"] as! String == "accept" {
                #expect(result == nil, "\(id)")
            } else {
                #expect(result == Self.hmacExpectedCodes[id], "\(id): got \(result?.rawValue ?? "accept")")
            }
        }
        // With HS384 also allowed, the HS256-pinned key still refuses the HS384 token.
        let wider = try Self.verifier(profile: profile, keys: try VerificationKeySet([key]), algorithms: [.hs256, .hs384])
        let hs384 = cases.first { $0["id"] as! String == "hs384-on-hs256-key" }!["token"] as! String
        #expect(await outcome(wider, hs384) == .algorithmMismatch)
    }

    @Test("weak_key_case: a 1024-bit RSA key in the JWKS is never trusted")
    func weakKey() async throws {
        let file = try Vectors.json("derived/jwt_attack_cases.json")
        let weak = file["weak_key_case"] as! [String: Any]
        let set = JWKSet(keys: [try JWK(jsonBytes: try Vectors.data(weak["jwks_entry"]!))])
        let keys = try VerificationKeySet(jwks: set)
        #expect(keys.keys.isEmpty && keys.skipped.map(\.error.code) == [.weakKey])
        expectError(VerifierConfigurationError.Code.noUsableKey) {
            try AccessTokenVerifier(configuration: .init(issuer: "https://issuer.example", audience: "https://rs.example"), keys: keys)
        }
    }
}
