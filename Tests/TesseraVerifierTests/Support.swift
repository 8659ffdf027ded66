import Foundation
import Testing
import TesseraJOSE
@testable import TesseraVerifier
@_exported import TesseraTestSupport

/// A manually advanced monotonic clock for cache tests.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var seconds: Double = 1000
    var now: Double { lock.withLock { seconds } }
    func advance(_ delta: Double) { lock.withLock { seconds += delta } }
    var monotonic: MonotonicClock { MonotonicClock { [self] in now } }
}

/// Builds RFC 9068 access tokens (or deliberately broken ones) with a real key.
struct TokenFactory {
    let key: SigningKey
    var issuer = "https://issuer.example"
    var audience = "https://rs.example"
    var now: Int64 = 1_700_000_000

    var standardClaims: JSONObject {
        JSONObject(["iss": .string(issuer), "sub": .string("alice"), "aud": .string(audience),
                    "exp": .number(JSONNumber(now + 600)), "iat": .number(JSONNumber(now)),
                    "jti": .string("jti-1"), "client_id": .string("app"), "scope": .string("read write")])
    }

    var standardHeader: String { #"{"alg":"\#(key.algorithm.name)","typ":"at+jwt","kid":"\#(key.keyID!)"}"# }

    /// A token with exactly this header and payload text, signed over those bytes by `signer` (default: the key).
    func token(header: String? = nil, payload: String? = nil, signer: SigningKey? = nil) throws -> String {
        let input = Base64URL.encode(Array((header ?? standardHeader).utf8)) + "."
            + Base64URL.encode(Array((payload ?? standardClaims.jsonString).utf8))
        return input + "." + Base64URL.encode(try (signer ?? key).signature(for: Array(input.utf8)))
    }

    func token(modifying change: (inout JSONObject) -> Void) throws -> String {
        var claims = standardClaims
        change(&claims)
        return try token(payload: claims.jsonString)
    }

    func configuration(leeway: TimeInterval = 0) -> AccessTokenVerifier.Configuration {
        var configuration = AccessTokenVerifier.Configuration(issuer: issuer, audience: audience)
        configuration.leeway = leeway
        configuration.clock = .fixed(Date(timeIntervalSince1970: TimeInterval(now)))
        return configuration
    }

    func verifier(leeway: TimeInterval = 0) throws -> AccessTokenVerifier {
        try AccessTokenVerifier(configuration: configuration(leeway: leeway), keys: try VerificationKeySet([try key.verificationKey()]))
    }
}

/// The outcome of verifying: the error code, or nil when accepted.
func outcome(_ verifier: AccessTokenVerifier, _ token: String) async -> TokenVerificationError.Code? {
    do {
        _ = try await verifier.verify(token)
        return nil
    } catch let error as TokenVerificationError {
        return error.code
    } catch {
        return TokenVerificationError.Code("unexpected \(error)")
    }
}
