import TesseraJOSE

/// An OAuth error: what the client is told (`code`, `description`) kept apart from what the operator's
/// log gets (`logMessage`). Codes mirror RFC 6749 §5.2 and RFC 6750 §3.1 exactly; only the server module
/// turns them into HTTP statuses and headers.
public struct OAuthError: CodedError {
    public typealias Code = ErrorCode<OAuthError>

    public let code: Code
    /// `error_description`: safe to show the client (no secret, no token, no internal detail).
    public let description: String
    /// For the operator's log: may name the failed check in more detail; never a secret or a token.
    public let logMessage: String
    public var message: String { logMessage }

    public init(_ code: Code, _ description: String, log: String? = nil) {
        self.code = code
        self.description = description
        logMessage = log ?? description
    }
}

/// The codes of `OAuthError`.
extension ErrorCode where Domain == OAuthError {
    // RFC 6749 §5.2
    public static var invalidRequest: Self { Self("invalid_request") }
    public static var invalidClient: Self { Self("invalid_client") }
    public static var invalidGrant: Self { Self("invalid_grant") }
    public static var unauthorizedClient: Self { Self("unauthorized_client") }
    public static var unsupportedGrantType: Self { Self("unsupported_grant_type") }
    public static var invalidScope: Self { Self("invalid_scope") }
    // RFC 6750 §3.1
    public static var invalidToken: Self { Self("invalid_token") }
    public static var insufficientScope: Self { Self("insufficient_scope") }
    // RFC 7009 §2.2.1
    public static var unsupportedTokenType: Self { Self("unsupported_token_type") }
    /// RFC 6749 §4.1.2.1 (an authorization-response code; the token endpoint uses it too, as 503):
    /// the server could not do its part, such as a store that refuses writes.
    public static var temporarilyUnavailable: Self { Self("temporarily_unavailable") }
    // RFC 6749 §4.1.2.1
    public static var accessDenied: Self { Self("access_denied") }
    public static var unsupportedResponseType: Self { Self("unsupported_response_type") }
    public static var serverError: Self { Self("server_error") }
    // OpenID Connect Core §3.1.2.6 (answers to prompt=none)
    public static var loginRequired: Self { Self("login_required") }
    public static var consentRequired: Self { Self("consent_required") }
    public static var interactionRequired: Self { Self("interaction_required") }
    /// OpenID Connect Core §3.1.2.6: request objects (`request`, `request_uri`) and dynamic registration are not offered.
    public static var requestNotSupported: Self { Self("request_not_supported") }
    public static var requestURINotSupported: Self { Self("request_uri_not_supported") }
    public static var registrationNotSupported: Self { Self("registration_not_supported") }
}
