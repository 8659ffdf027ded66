import Foundation
import TesseraJOSE
import TesseraTestSupport
import Testing

@testable import TesseraVerifier

/// Tokens made by independent JOSE implementations (joserfc, PyJWT) with Tessera's keys verify with
/// TesseraVerifier, and no single changed character does; tokens Tessera signs verify with both peers
/// (THREATS A28: signer correctness). The peers run as a Python subprocess; a missing peer fails the test
/// (`.ci/run` installs them).
@Suite("Interop with joserfc and PyJWT")
struct InteropTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Interop/jose_peer.py").path

    static func peer(_ request: [String: Any]) async throws -> [String: Any] {
        let python = try await runChild("/usr/bin/env", ["python3", script], stdin: try JSONSerialization.data(withJSONObject: request))
        guard python.status == 0, let answer = try JSONSerialization.jsonObject(with: Data(python.out.utf8)) as? [String: Any] else {
            throw TestSupportError("python peer failed (is joserfc / PyJWT installed?): \(python.err.suffix(500))")
        }
        return answer
    }

    static func jsonObject(_ jwk: JWK) throws -> Any { try JSONSerialization.jsonObject(with: Data(jwk.jsonString.utf8)) }

    @Test(
        "a token signed by joserfc or PyJWT with our key verifies; one changed character anywhere does not",
        arguments: JWSAlgorithm.asymmetric)
    func peersSignWeVerify(_ algorithm: JWSAlgorithm) async throws {
        let key = try SigningKey.generate(algorithm)
        let factory = TokenFactory(key: key)
        let verifier = try factory.verifier()
        let claims = try JSONSerialization.jsonObject(with: Data(factory.standardClaims.jsonString.utf8))
        for library in ["joserfc", "pyjwt"] {
            let answer = try await Self.peer([
                "op": "sign", "library": library, "jwk": try Self.jsonObject(try key.privateJWK()),
                "header": ["alg": algorithm.name, "typ": "at+jwt", "kid": key.keyID!], "claims": claims,
            ])
            let token = try #require(answer["token"] as? String, "\(library): \(answer)")
            let verified = try await verifier.verify(token)
            #expect(verified.subject == "alice" && verified.scopes == ["read", "write"], "\(library) \(algorithm)")
            let bytes = Array(token.utf8)
            var accepted: [Int] = []
            for index in bytes.indices where bytes[index] != UInt8(ascii: ".") {
                if await outcome(verifier, tamper(token, at: index)) == nil { accepted.append(index) }
            }
            #expect(accepted.isEmpty, "\(library) \(algorithm): changed tokens accepted at \(accepted)")
        }
    }

    @Test("a token Tessera signs verifies with joserfc and PyJWT using the published JWK", arguments: JWSAlgorithm.asymmetric)
    func weSignPeersVerify(_ algorithm: JWSAlgorithm) async throws {
        let key = try SigningKey.generate(algorithm)
        let token = try JWSSigner(key: key, type: "at+jwt").sign(claims: TokenFactory(key: key).standardClaims)
        let published = try #require(try JWKSet(publicKeysOf: [key]).keys.first)
        for library in ["joserfc", "pyjwt"] {
            let answer = try await Self.peer([
                "op": "verify", "library": library, "jwk": try Self.jsonObject(published),
                "token": token, "alg": algorithm.name,
            ])
            #expect(answer["ok"] as? Bool == true, "\(library) \(algorithm): \(answer["error"] ?? "")")
            let altered = tamper(token, at: token.count - 3)
            let refused = try await Self.peer([
                "op": "verify", "library": library, "jwk": try Self.jsonObject(published),
                "token": altered, "alg": algorithm.name,
            ])
            #expect(refused["ok"] as? Bool == false, "\(library) \(algorithm) accepted a changed token")
        }
    }
}
