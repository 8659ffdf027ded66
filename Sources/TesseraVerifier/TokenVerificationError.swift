import TesseraJOSE

/// Why an access token was refused: a stable code naming the failed check, and a message for logs.
///
/// Messages never echo the token or key material. `oauthError` and `httpStatus` give the RFC 6750
/// §3.1 answer: `invalid_token` (401) for every failed check, `insufficient_scope` (403) when the
/// token is valid but lacks a required scope.
public struct TokenVerificationError: CodedError {
    public typealias Code = ErrorCode<TokenVerificationError>

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) { (self.code, self.message) = (code, message) }

    init(_ error: JOSEError) {
        self.init(Code(error.code.rawValue), error.message)
    }

    /// The RFC 6750 §3.1 error code for the wire.
    public var oauthError: String { code == .insufficientScope ? "insufficient_scope" : "invalid_token" }

    /// The HTTP status RFC 6750 §3.1 gives the error.
    public var httpStatus: Int { code == .insufficientScope ? 403 : 401 }

    /// The `error_description` for the wire, in the challenge and in a response body alike: the failed
    /// check's name (never the token, a key or the detailed message).
    public var wireDescription: String { code == .insufficientScope ? "the token lacks a required scope" : code.rawValue }
}

/// The codes of `TokenVerificationError`.
extension ErrorCode where Domain == TokenVerificationError {
    // Shape (TesseraJOSE's codes keep their names)
    public static var tokenTooLarge: Self { Self(JOSEError.Code.tokenTooLarge.rawValue) }
    public static var malformedToken: Self { Self(JOSEError.Code.malformedToken.rawValue) }
    public static var invalidBase64URL: Self { Self(JOSEError.Code.invalidBase64URL.rawValue) }
    public static var malformedHeader: Self { Self(JOSEError.Code.malformedHeader.rawValue) }
    public static var unsupportedCriticalHeader: Self { Self(JOSEError.Code.unsupportedCriticalHeader.rawValue) }
    /// The claims set is not one JSON object without duplicate members (RFC 7519 §7.2).
    public static var malformedClaims: Self { Self("malformed_claims") }

    // Algorithm and key
    public static var unsupportedAlgorithm: Self { Self(JOSEError.Code.unsupportedAlgorithm.rawValue) }
    /// A real algorithm, but not on this verifier's allow-list.
    public static var algorithmNotAllowed: Self { Self("algorithm_not_allowed") }
    public static var algorithmMismatch: Self { Self(JOSEError.Code.algorithmMismatch.rawValue) }
    public static var unknownKey: Self { Self(JOSEError.Code.unknownKey.rawValue) }
    public static var ambiguousKey: Self { Self(JOSEError.Code.ambiguousKey.rawValue) }
    public static var invalidSignature: Self { Self(JOSEError.Code.invalidSignature.rawValue) }
    /// No trusted keys could be obtained (issuer unreachable past the stale bound, bad JWKS file).
    public static var keysUnavailable: Self { Self("keys_unavailable") }

    // RFC 9068 §4 checks
    /// `typ` is not `at+jwt` / `application/at+jwt` (RFC 9068 §2.1, §4; RFC 8725 §3.11).
    public static var invalidType: Self { Self("invalid_type") }
    /// A `cty` header: access tokens are never nested (RFC 8725 §3.3 / §2.8).
    public static var nestedToken: Self { Self("nested_token") }
    public static var invalidIssuer: Self { Self("invalid_issuer") }
    public static var invalidAudience: Self { Self("invalid_audience") }
    public static var expired: Self { Self("expired") }
    public static var notYetValid: Self { Self("not_yet_valid") }
    public static var issuedInFuture: Self { Self("issued_in_future") }
    /// A claim RFC 9068 §2.2 requires is absent.
    public static var missingClaim: Self { Self("missing_claim") }
    /// A claim has the wrong JSON type, an unrepresentable value, or a malformed `scope`.
    public static var invalidClaim: Self { Self("invalid_claim") }

    /// The token is valid but lacks a scope the resource requires (RFC 6750 §3.1).
    public static var insufficientScope: Self { Self("insufficient_scope") }
}
