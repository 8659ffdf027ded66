import Foundation
@_exported import TesseraTestSupport
import Testing

@testable import TesseraJOSE

extension Vectors {
    /// Re-serializes a Foundation JSON object and reads it as a JWK with Tessera's parser.
    static func jwk(_ object: Any) throws -> JWK { try JWK(jsonBytes: try data(object)) }

    static func jwks(_ object: Any) throws -> JWKSet { try JWKSet(jsonBytes: try data(object)) }
}

/// The result of verifying a token with a set: the error code, or nil when it verified.
func verificationOutcome(_ token: String, _ keys: VerificationKeySet) -> JOSEError.Code? {
    do {
        _ = try UnverifiedJWS(parsing: token).verified(using: keys)
        return nil
    } catch let error as JOSEError {
        return error.code
    } catch {
        return JOSEError.Code("unexpected: \(error)")
    }
}
