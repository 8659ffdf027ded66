import TesseraJOSE

/// Why an access token was refused: a stable code naming the failed check, and a message for logs.
///
/// Messages never echo the token or key material. `oauthError` and `httpStatus` give the RFC 6750
/// §3.1 answer: `invalid_token` (401) for every failed check, `insufficient_scope` (403) when the
/// token is valid but lacks a required scope.
public struct TokenVerificationError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        // Shape (TesseraJOSE's codes keep their names)
        public static let tokenTooLarge = Code(JOSEError.Code.tokenTooLarge.rawValue)
        public static let malformedToken = Code(JOSEError.Code.malformedToken.rawValue)
        public static let invalidBase64URL = Code(JOSEError.Code.invalidBase64URL.rawValue)
        public static let malformedHeader = Code(JOSEError.Code.malformedHeader.rawValue)
        public static let unsupportedCriticalHeader = Code(JOSEError.Code.unsupportedCriticalHeader.rawValue)
        /// The claims set is not one JSON object without duplicate members (RFC 7519 §7.2).
        public static let malformedClaims = Code("malformed_claims")

        // Algorithm and key
        public static let unsupportedAlgorithm = Code(JOSEError.Code.unsupportedAlgorithm.rawValue)
        /// A real algorithm, but not on this verifier's allow-list.
        public static let algorithmNotAllowed = Code("algorithm_not_allowed")
        public static let algorithmMismatch = Code(JOSEError.Code.algorithmMismatch.rawValue)
        public static let unknownKey = Code(JOSEError.Code.unknownKey.rawValue)
        public static let ambiguousKey = Code(JOSEError.Code.ambiguousKey.rawValue)
        public static let invalidSignature = Code(JOSEError.Code.invalidSignature.rawValue)
        /// No trusted keys could be obtained (issuer unreachable past the stale bound, bad JWKS file).
        public static let keysUnavailable = Code("keys_unavailable")

        // RFC 9068 §4 checks
        /// `typ` is not `at+jwt` / `application/at+jwt` (RFC 9068 §2.1, §4; RFC 8725 §3.11).
        public static let invalidType = Code("invalid_type")
        /// A `cty` header: access tokens are never nested (RFC 8725 §3.3 / §2.8).
        public static let nestedToken = Code("nested_token")
        public static let invalidIssuer = Code("invalid_issuer")
        public static let invalidAudience = Code("invalid_audience")
        public static let expired = Code("expired")
        public static let notYetValid = Code("not_yet_valid")
        public static let issuedInFuture = Code("issued_in_future")
        /// A claim RFC 9068 §2.2 requires is absent.
        public static let missingClaim = Code("missing_claim")
        /// A claim has the wrong JSON type, an unrepresentable value, or a malformed `scope`.
        public static let invalidClaim = Code("invalid_claim")

        /// The token is valid but lacks a scope the resource requires (RFC 6750 §3.1).
        public static let insufficientScope = Code("insufficient_scope")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    init(_ error: JOSEError) {
        self.init(Code(error.code.rawValue), error.message)
    }

    public var description: String { "\(code): \(message)" }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }

    /// The RFC 6750 §3.1 error code for the wire.
    public var oauthError: String { code == .insufficientScope ? "insufficient_scope" : "invalid_token" }

    /// The HTTP status RFC 6750 §3.1 gives the error.
    public var httpStatus: Int { code == .insufficientScope ? 403 : 401 }

    /// The `error_description` for the wire, in the challenge and in a response body alike: the failed
    /// check's name (never the token, a key or the detailed message).
    public var wireDescription: String { code == .insufficientScope ? "the token lacks a required scope" : code.rawValue }
}
