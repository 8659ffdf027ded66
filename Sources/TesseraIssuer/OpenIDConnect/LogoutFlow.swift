public import Foundation
public import TesseraJOSE

/// OpenID Connect RP-Initiated Logout 1.0, without HTTP: `/logout` (the `end_session_endpoint`).
///
/// An app sends the browser here with `id_token_hint`, `client_id`, `post_logout_redirect_uri` and
/// `state`. The hint must be an ID token this server issued (expired ones count, §2), naming `client_id`
/// among its audiences; the redirect URI must be one the client registered, compared exactly. With a
/// hint for the user signed in on this browser, the session ends at once; otherwise the user is asked
/// (a page whose button posts the session's CSRF token), so a link on another site cannot sign anyone out.
/// Ending a session signs the browser out of every app it signed in to here; refresh tokens granted with
/// `offline_access` live on (that is what they are for): an app revokes its own with RFC 7009.
public struct LogoutFlow: Sendable {
    public enum Step: Sendable {
        /// 303 to the app's post-logout redirect URI (with `state`).
        case redirect(String)
        /// A page saying the browser is signed out.
        case signedOut
        /// A page saying the user is still signed in (they cancelled).
        case stillSignedIn
        /// Ask the user: the request carries the parameters to post back with the button.
        case confirm(LogoutRequest)
        case errorPage(OAuthError)
    }

    public struct Answer: Sendable {
        public let step: Step
        /// The browser session the page belongs to (its CSRF token), or that just ended (`ended`).
        public let session: BrowserSession?
        /// The session was ended: clear its cookie.
        public let ended: Bool
    }

    /// A validated logout request.
    public struct LogoutRequest: Sendable {
        public let clientID: String?
        public let postLogoutRedirectURI: String?
        public let state: String?
        /// The `sub` of a valid `id_token_hint`.
        public let hintedSubject: String?
    }

    public let clients: @Sendable () -> ClientRegistry
    public let sessions: any BrowserSessionRecords
    public let idTokens: IDTokens
    public let log: @Sendable (String) -> Void

    public init(
        clients: @escaping @Sendable () -> ClientRegistry, sessions: any BrowserSessionRecords, idTokens: IDTokens,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.clients = clients
        self.sessions = sessions
        self.idTokens = idTokens
        self.log = log
    }

    /// `GET` or `POST /logout`. A post of the confirmation page carries `confirm` (`yes` or `no`) and `csrf_token`.
    public func logout(_ parameters: [String: String], cookie: String?) async -> Answer {
        let request: LogoutRequest
        switch validate(parameters) {
        case .failure(let error):
            log("logout refused: \(error.description)")
            return Answer(step: .errorPage(error), session: nil, ended: false)
        case .success(let valid): request = valid
        }
        let unavailable = Answer(
            step: .errorPage(OAuthError(.temporarilyUnavailable, "Signing out is unavailable for a moment. Try again shortly.")), session: nil,
            ended: false)
        let found: BrowserSession?
        do { found = try await sessions.session(cookie) } catch { return unavailable }
        guard let session = found, session.subject != nil else {
            return Answer(step: finished(request), session: nil, ended: false)  // nobody is signed in here
        }
        if let decision = parameters["confirm"] {
            guard BrowserSessions.checkCSRF(parameters["csrf_token"], for: session) else {
                return Answer(
                    step: .errorPage(OAuthError(.invalidRequest, "This sign-out form did not come from this server, or it expired.")),
                    session: nil, ended: false)
            }
            guard decision == "yes" else { return Answer(step: .stillSignedIn, session: session, ended: false) }
        } else if !(request.hintedSubject.map { $0.sameBytes(as: session.subject ?? "") } ?? false) {
            return Answer(step: .confirm(request), session: session, ended: false)
        }
        do { try await sessions.end(session) } catch { return unavailable }
        log("signed out \(session.username ?? "?")" + (request.clientID.map { " at the request of \($0)" } ?? ""))
        return Answer(step: finished(request), session: session, ended: true)
    }

    private func finished(_ request: LogoutRequest) -> Step {
        guard let uri = request.postLogoutRedirectURI else { return .signedOut }
        var location = uri
        if let state = request.state {
            let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
            location += (uri.contains("?") ? "&" : "?") + "state=" + (state.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")
        }
        return .redirect(location)
    }

    private func validate(_ parameters: [String: String]) -> Result<LogoutRequest, OAuthError> {
        var hinted: String?
        var audiences: [String] = []
        if let hint = parameters["id_token_hint"], !hint.isEmpty {
            guard let claims = idTokens.hintClaims(hint) else {
                return .failure(OAuthError(.invalidRequest, "The id_token_hint is not an ID token this server issued."))
            }
            hinted = claims["sub"]?.stringValue
            audiences = IDTokens.audiences(claims)
        }
        var clientID = parameters["client_id"].flatMap { $0.isEmpty ? nil : $0 }
        if let given = clientID, hinted != nil, !audiences.contains(where: { $0.sameBytes(as: given) }) {
            return .failure(OAuthError(.invalidRequest, "The id_token_hint was not issued to this client_id."))
        }
        if clientID == nil, audiences.count == 1 { clientID = audiences[0] }
        let client = clientID.flatMap { clients().client($0) }
        if clientID != nil, client == nil { return .failure(OAuthError(.invalidRequest, "The client_id is not a registered client.")) }
        let state = parameters["state"]
        if let state, state.utf8.count > AuthorizationRequest.maximumStateLength {
            return .failure(OAuthError(.invalidRequest, "The state is too long."))
        }
        var redirect: String?
        if let uri = parameters["post_logout_redirect_uri"], !uri.isEmpty {
            guard let client else {
                return .failure(OAuthError(.invalidRequest, "A post_logout_redirect_uri needs a client_id or an id_token_hint saying whose it is."))
            }
            guard let registered = client.postLogoutRedirectURIs?.first(where: { $0.sameBytes(as: uri) }) else {
                return .failure(OAuthError(.invalidRequest, "The post_logout_redirect_uri is not registered for this client."))
            }
            redirect = registered
        }
        return .success(LogoutRequest(clientID: client?.id, postLogoutRedirectURI: redirect, state: state, hintedSubject: hinted))
    }
}
