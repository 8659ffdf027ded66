import Foundation
import TesseraJOSE

/// A validated authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3): what `/authorize` shows the
/// sign-in and consent pages for, and what the code will be bound to.
public struct AuthorizationRequest: Sendable {
    public let client: Client
    /// The redirect URI to answer to: the one sent (exactly equal to a registered one), or the only one registered.
    public let redirectURI: String
    /// Whether the request carried `redirect_uri` (then the token request must repeat it, RFC 6749 §4.1.3).
    public let redirectURISent: Bool
    public let scope: [String]
    public let state: String?
    public let challenge: (value: String, method: PKCE.Method)?
    public let prompt: Set<String>
    /// OpenID Connect Core §3.1.2.1: echoed in the ID token exactly as sent.
    public let nonce: String?
    /// Seconds: a sign-in older than this is done again (`0`: always).
    public let maxAge: Int?
    /// Prefills the sign-in form's username.
    public let loginHint: String?
    /// An ID token this server issued earlier, naming the user the app expects (checked by the flow).
    public let idTokenHint: String?
    public let claims: ClaimsRequest
    /// The parameters it was validated from: what a shared session store keeps, to validate again when the
    /// request is resumed (the client may have changed meanwhile).
    public let parameters: [String: String]

    /// Whether this is an OpenID Connect request (Core §3.1.2.1: `openid` among the scopes).
    public var isOpenID: Bool { scope.contains("openid") }

    /// The scopes the user is asked to agree to: the requested ones, and those whose claims the `claims`
    /// parameter names (asking for `email` by name is asking for what the `email` scope releases).
    public var consentScope: [String] {
        let implied = claims.all.compactMap(StandardClaims.scope(releasing:)).filter { !scope.contains($0) }
        return scope + Set(implied).sorted()
    }

    /// The outcome of validating the parameters.
    public enum Outcome: Sendable {
        case valid(AuthorizationRequest)
        /// RFC 6749 §4.1.2.1: the client or the redirect URI is wrong: show an error page, never redirect.
        case errorPage(OAuthError)
        /// Any other error: redirect back to the (validated) redirect URI with `error`, `state` and `iss`.
        case redirectError(OAuthError, redirectURI: String, state: String?)
    }

    static let maximumStateLength = 2_048

    /// Validates `parameters` against the registry. The order matters: nothing is sent to a redirect URI
    /// until the client and the URI are known to belong together (RFC 9700 §4.11.2: no open redirector).
    public static func validate(_ parameters: [String: String], registry: ClientRegistry) -> Outcome {
        guard let clientID = parameters["client_id"], !clientID.isEmpty, let client = registry.client(clientID) else {
            return .errorPage(OAuthError(.invalidRequest, "unknown or missing client_id"))
        }
        let redirectURI: String
        let sent = parameters["redirect_uri"]
        if let sent {
            // RFC 9700 §4.1.3 / §2.1: exact string comparison, no patterns, no normalisation (but the port
            // of a loopback URI, RFC 8252 §7.3). The redirect goes to the URI as sent.
            guard client.registeredRedirectURI(matching: sent) != nil else {
                return .errorPage(OAuthError(.invalidRequest, "redirect_uri is not registered for this client"))
            }
            redirectURI = sent
        } else {
            guard client.redirectURIs.count == 1 else {
                return .errorPage(OAuthError(.invalidRequest, "redirect_uri is required (the client registered more than one)"))
            }
            redirectURI = client.redirectURIs[0]
        }
        let state = parameters["state"]
        func fail(_ code: OAuthError.Code, _ description: String) -> Outcome {
            .redirectError(OAuthError(code, description), redirectURI: redirectURI, state: state)
        }
        if let state, state.utf8.count > maximumStateLength {
            return .redirectError(
                OAuthError(.invalidRequest, "state is longer than \(maximumStateLength) bytes"), redirectURI: redirectURI, state: nil)
        }
        guard let responseType = parameters["response_type"] else { return fail(.invalidRequest, "response_type is missing") }
        guard responseType == "code" else {
            // The implicit grant and hybrid types are not offered (RFC 9700 §2.1.2).
            return fail(.unsupportedResponseType, "only response_type=code is supported")
        }
        guard client.allows(.authorizationCode) else { return fail(.unauthorizedClient, "this client may not use the authorization code grant") }
        let scope: [String]
        do {
            scope = try TokenEndpoint.resolveScope(try parameters["scope"].map(TokenRequest.parseScope), for: client)
        } catch let error as OAuthError {
            return .redirectError(error, redirectURI: redirectURI, state: state)
        } catch {
            return fail(.invalidScope, "scope is malformed")
        }
        var challenge: (String, PKCE.Method)?
        if let value = parameters["code_challenge"] {
            let methodName = parameters["code_challenge_method"] ?? "plain"  // RFC 7636 §4.3: absent means plain
            guard let method = PKCE.Method(rawValue: methodName), method == .s256 || client.pkcePlainAllowed == true else {
                return fail(.invalidRequest, "code_challenge_method must be S256")
            }
            guard PKCE.isValidChallenge(value, method: method) else { return fail(.invalidRequest, "code_challenge is malformed") }
            challenge = (value, method)
        } else if parameters["code_challenge_method"] != nil {
            return fail(.invalidRequest, "code_challenge_method without code_challenge")
        } else if client.type == .public {
            // RFC 9700 §2.1.1: public clients MUST use PKCE.
            return fail(.invalidRequest, "code_challenge is required for public clients (PKCE, RFC 7636)")
        }
        let prompt = Set((parameters["prompt"] ?? "").split(separator: " ").map(String.init))
        guard prompt.isSubset(of: ["none", "login", "consent", "select_account"]), !(prompt.contains("none") && prompt.count > 1) else {
            return fail(.invalidRequest, "prompt must be none, or any of login, consent and select_account")
        }
        // OpenID Connect Core §6 and §3.1.2.6: request objects and dynamic registration are not offered.
        if parameters["request"] != nil { return fail(.requestNotSupported, "the request parameter (request objects) is not supported") }
        if parameters["request_uri"] != nil { return fail(.requestURINotSupported, "request_uri is not supported") }
        if parameters["registration"] != nil { return fail(.registrationNotSupported, "the registration parameter is not supported") }
        let nonce = parameters["nonce"]
        if let nonce, nonce.utf8.count > maximumNonceLength { return fail(.invalidRequest, "nonce is longer than \(maximumNonceLength) bytes") }
        var maxAge: Int?
        if let text = parameters["max_age"] {
            guard let seconds = Int(text), seconds >= 0, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else {
                return fail(.invalidRequest, "max_age must be a whole number of seconds")
            }
            maxAge = seconds
        }
        let claims: ClaimsRequest
        do { claims = try parameters["claims"].map(ClaimsRequest.init(parsing:)) ?? ClaimsRequest() } catch let error as OAuthError {
            return .redirectError(error, redirectURI: redirectURI, state: state)
        } catch {
            return fail(.invalidRequest, "claims could not be read")
        }
        if let hint = parameters["id_token_hint"], hint.utf8.count > UnverifiedJWS.defaultMaximumSize {
            return fail(.invalidRequest, "id_token_hint is too long")
        }
        return .valid(
            AuthorizationRequest(
                client: client, redirectURI: redirectURI, redirectURISent: sent != nil, scope: scope,
                state: state, challenge: challenge, prompt: prompt, nonce: nonce, maxAge: maxAge,
                loginHint: parameters["login_hint"].map { String($0.prefix(255)) }, idTokenHint: parameters["id_token_hint"],
                claims: claims, parameters: parameters))
    }

    static let maximumNonceLength = 512

    /// The redirect carrying a code or an error, with `state` echoed and `iss` (RFC 9207).
    public static func redirect(to uri: String, _ parameters: [(String, String)], state: String?, issuer: String) -> String {
        var items = parameters
        if let state { items.append(("state", state)) }
        items.append(("iss", issuer))
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        let query = items.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }.joined(separator: "&")
        return uri + (uri.contains("?") ? "&" : "?") + query
    }
}
