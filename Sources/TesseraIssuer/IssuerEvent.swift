/// What the issuer's logic reports for metrics, without depending on a metrics package: `tessera serve`
/// turns each event into swift-metrics calls (`TesseraServer/ServerMetrics.swift`, names in
/// `docs/operations.md`). Never a token, secret, password or username; client ids are registered names.
public enum IssuerEvent: Sendable, Equatable {
    /// The token endpoint issued an access token.
    case tokenIssued(grantType: String, clientID: String)
    /// The token endpoint answered an RFC 6749 §5.2 error (`invalid_client` included).
    case tokenError(code: String)
    /// A refresh token was rotated, a retry inside the window got the same successor, or a rotated-away token
    /// came back and its family was revoked.
    case refreshRotated, refreshRetried, refreshReuse
    /// `/authorize` was asked (a valid request, or one answered with an error).
    case authorizationRequest
    case signIn(SignInOutcome)
    /// The consent form was answered.
    case consent(allowed: Bool)

    public enum SignInOutcome: String, Sendable {
        case ok, failed, throttled
    }
}

/// Where events go (nothing, by default).
public typealias IssuerEventSink = @Sendable (IssuerEvent) -> Void
