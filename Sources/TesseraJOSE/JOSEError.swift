/// The one error type of `TesseraJOSE`.
///
/// `code` is stable and is what callers and tests compare; `message` is for logs and names the
/// check that failed. Neither ever carries key material or a whole token: at most a short,
/// bounded fragment such as an algorithm name.
public struct JOSEError: CodedError {
    /// A stable error code. Compared by `rawValue`; new codes can be added without breaking callers.
    public typealias Code = ErrorCode<JOSEError>

    public let code: Code
    /// What failed, for operators. Never key material, never the token.
    public let message: String
    /// libcrypto's own error text when it reported one.
    public let underlying: String?

    public init(_ code: Code, _ message: String, underlying: String? = nil) {
        (self.code, self.message, self.underlying) = (code, message, underlying)
    }

    public var description: String {
        if let underlying { return "\(code): \(message) (\(underlying))" }
        return "\(code): \(message)"
    }
}

/// The codes of `JOSEError`.
extension ErrorCode where Domain == JOSEError {
    // Encoding and structure
    /// A base64url segment has padding, characters outside the alphabet, or non-zero trailing bits.
    public static var invalidBase64URL: Self { Self("invalid_base64url") }
    /// JSON that is malformed, has duplicate member names, is nested too deep, or is not UTF-8.
    public static var invalidJSON: Self { Self("invalid_json") }
    /// The token is larger than the configured bound; nothing was decoded.
    public static var tokenTooLarge: Self { Self("token_too_large") }
    /// Not three dot-separated segments (JWE, JSON serialization, truncated or extended tokens).
    public static var malformedToken: Self { Self("malformed_token") }
    /// The protected header is not a JSON object, or a known member has the wrong type.
    public static var malformedHeader: Self { Self("malformed_header") }
    /// `alg` is missing, not a string, `none`, or not an algorithm Tessera implements.
    public static var unsupportedAlgorithm: Self { Self("unsupported_algorithm") }
    /// The header lists a critical extension (`crit`) Tessera does not implement (RFC 7515 §4.1.11),
    /// or uses the unencoded payload option `b64` (RFC 7797), which JWTs never use.
    public static var unsupportedCriticalHeader: Self { Self("unsupported_critical_header") }

    // Keys and selection
    /// The header's `alg` differs from the one algorithm the selected key is bound to.
    public static var algorithmMismatch: Self { Self("algorithm_mismatch") }
    /// No trusted key has the token's `kid`, or, without `kid`, none fits its `alg`.
    public static var unknownKey: Self { Self("unknown_key") }
    /// The token has no `kid` and more than one trusted key fits its `alg`.
    public static var ambiguousKey: Self { Self("ambiguous_key") }
    /// The signature or MAC does not verify (wrong length, wrong encoding, or wrong value).
    public static var invalidSignature: Self { Self("invalid_signature") }
    /// A key could not be read: missing or malformed members, wrong curve, point not on the curve,
    /// inconsistent private part, unsupported key type, or a PEM that is not PKCS#8 / SPKI.
    public static var invalidKey: Self { Self("invalid_key") }
    /// A key that is readable but too weak to use: RSA under 2048 bits, a bad public exponent,
    /// a ROCA-affected modulus, an HMAC secret shorter than the hash output.
    public static var weakKey: Self { Self("weak_key") }
    /// The key is marked for another purpose (`use` other than `sig`, `key_ops` without the operation).
    public static var keyUsageMismatch: Self { Self("key_usage_mismatch") }
    /// No algorithm was given for a key whose JWK has no `alg` (the token never chooses it).
    public static var missingAlgorithm: Self { Self("missing_algorithm") }
    /// A key set is ambiguous or unsafe as a whole: duplicate `kid`, symmetric mixed with
    /// asymmetric keys, or private key members in a set meant for verification.
    public static var invalidKeySet: Self { Self("invalid_key_set") }
    /// The operation needs a private key, or an export would reveal secret material.
    public static var operationNotPermitted: Self { Self("operation_not_permitted") }
    /// libcrypto reported an internal failure (allocation, provider error).
    public static var cryptoFailure: Self { Self("crypto_failure") }
}
