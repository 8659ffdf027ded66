/// An OAuth error: what the client is told (`code`, `description`) kept apart from what the operator's
/// log gets (`logMessage`). Codes mirror RFC 6749 §5.2 and RFC 6750 §3.1 exactly; only the server module
/// turns them into HTTP statuses and headers.
public struct OAuthError: Error, Sendable, CustomStringConvertible, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        // RFC 6749 §5.2
        public static let invalidRequest = Code("invalid_request")
        public static let invalidClient = Code("invalid_client")
        public static let invalidGrant = Code("invalid_grant")
        public static let unauthorizedClient = Code("unauthorized_client")
        public static let unsupportedGrantType = Code("unsupported_grant_type")
        public static let invalidScope = Code("invalid_scope")
        // RFC 6750 §3.1
        public static let invalidToken = Code("invalid_token")
        public static let insufficientScope = Code("insufficient_scope")
        // RFC 7009 §2.2.1
        public static let unsupportedTokenType = Code("unsupported_token_type")
        /// RFC 6749 §4.1.2.1 (an authorization-response code; the token endpoint uses it too, as 503):
        /// the server could not do its part, such as a store that refuses writes.
        public static let temporarilyUnavailable = Code("temporarily_unavailable")
        // RFC 6749 §4.1.2.1
        public static let accessDenied = Code("access_denied")
        public static let unsupportedResponseType = Code("unsupported_response_type")
        public static let serverError = Code("server_error")
        // OpenID Connect Core §3.1.2.6 (answers to prompt=none)
        public static let loginRequired = Code("login_required")
        public static let consentRequired = Code("consent_required")
    }

    public let code: Code
    /// `error_description`: safe to show the client (no secret, no token, no internal detail).
    public let description: String
    /// For the operator's log: may name the failed check in more detail; never a secret or a token.
    public let logMessage: String

    public init(_ code: Code, _ description: String, log: String? = nil) {
        self.code = code
        self.description = description
        logMessage = log ?? description
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
}
