import Foundation
import TesseraJOSE

/// The browser side of the authorization code grant (RFC 6749 §4.1.1–4.1.2): `/authorize`, the sign-in
/// form and the consent form, as decisions the HTTP layer renders. No I/O but the users, consent and
/// client files it reads through its stores, so tests drive it directly with an injected clock.
public struct AuthorizationFlow: Sendable {
    /// What to answer the browser with.
    public enum Step: Sendable {
        /// Show the sign-in form for `pending` (`message` explains a failed attempt; `status` is 200, or 429 when throttled).
        case signIn(PendingAuthorization, message: String?, username: String?, status: Int)
        /// Ask `username` to let the client have the request's scopes.
        case consent(PendingAuthorization, username: String)
        /// 303 to the client's redirect URI with a code or an error (and `state`, `iss`).
        case redirect(String)
        /// The request cannot be answered to a client: an error page, never a redirect (RFC 6749 §4.1.2.1).
        case errorPage(OAuthError, status: Int)
    }

    public struct Answer: Sendable {
        public let step: Step
        /// The session the page belongs to (its cookie to set, its CSRF token for the forms).
        public let session: BrowserSession?
    }

    public let issuer: String
    public let clients: @Sendable () -> ClientRegistry
    public let users: @Sendable () throws -> [User]
    public let passwords: PasswordSignIn
    public let consents: any ConsentRecords
    public let codes: any AuthorizationCodeRecords
    public let sessions: any BrowserSessionRecords
    public let throttle: any FailureCounting
    public let clock: WallClock
    /// Called with each event worth a log line (never a password, code or cookie).
    public let log: @Sendable (String) -> Void
    /// The `sub` of an ID token this server issued (`IDTokens.hintSubject`), nil for anything else.
    public let hintSubject: @Sendable (String) -> String?
    public let events: IssuerEventSink

    public init(
        issuer: String, clients: @escaping @Sendable () -> ClientRegistry, users: @escaping @Sendable () throws -> [User],
        consents: any ConsentRecords, codes: any AuthorizationCodeRecords, sessions: any BrowserSessionRecords, throttle: any FailureCounting,
        passwords: PasswordSignIn? = nil, clock: WallClock = .system, hintSubject: @escaping @Sendable (String) -> String? = { _ in nil },
        events: @escaping IssuerEventSink = { _ in }, log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.hintSubject = hintSubject
        self.events = events
        self.issuer = issuer
        self.clients = clients
        self.users = users
        self.passwords = passwords ?? PasswordSignIn(users: users)
        self.consents = consents
        self.codes = codes
        self.sessions = sessions
        self.throttle = throttle
        self.clock = clock
        self.log = log
    }

    // MARK: - The three entry points

    /// `GET` or `POST /authorize` with the request's parameters.
    public func authorize(_ parameters: [String: String], cookie: String?) async -> Answer {
        events(.authorizationRequest)
        let request: AuthorizationRequest
        switch AuthorizationRequest.validate(parameters, registry: clients()) {
        case .errorPage(let error): return Answer(step: .errorPage(error, status: 400), session: nil)
        case .redirectError(let error, let uri, let state): return Answer(step: .redirect(redirect(uri, error, state: state)), session: nil)
        case .valid(let valid): request = valid
        }
        let hinted: String?
        if let hint = request.idTokenHint {
            guard let subject = hintSubject(hint) else {
                return Answer(
                    step: .redirect(redirect(request, OAuthError(.invalidRequest, "id_token_hint is not an ID token this server issued"))),
                    session: nil)
            }
            hinted = subject
        } else {
            hinted = nil
        }
        do {
            let session = try await sessions.sessionOrNew(cookie)
            if request.prompt.contains("none") {
                // OpenID Connect Core §3.1.2.1: no page at all; say what would have been needed.
                func loginRequired(_ reason: String) -> Answer {
                    Answer(step: .redirect(redirect(request, OAuthError(.loginRequired, reason))), session: session)
                }
                guard let user = signedInUser(session) else { return loginRequired("the user is not signed in") }
                guard !signInNeeded(request, session, signedInHere: false) else { return loginRequired("the sign-in is older than max_age") }
                guard hinted.map({ $0.sameBytes(as: user.subject) }) ?? true else {
                    return loginRequired("the user signed in is not the one id_token_hint names")
                }
                guard try await rememberedConsent(user.username, request) else {
                    return Answer(
                        step: .redirect(redirect(request, OAuthError(.consentRequired, "the user has not agreed to these scopes"))), session: session)
                }
                return Answer(step: .redirect(try await issueCode(request, user: user, session: session)), session: session)
            }
            let pending = try await sessions.open(request, in: session, hintedSubject: hinted)
            return try await advance(pending, session: session, user: signedInUser(session))
        } catch {
            return failed(request, error)
        }
    }

    /// `POST /authorize/sign-in`: `handle`, `csrf_token`, `username`, `password`, or `cancel`.
    public func signIn(_ form: [String: String], cookie: String?, address: String?) async -> Answer {
        let pending: PendingAuthorization
        let session: BrowserSession
        switch await resume(form, cookie: cookie) {
        case .answered(let answer): return answer
        case .form(let found, let owner): (pending, session) = (found, owner)
        }
        if form["cancel"] != nil { return await deny(pending, session: session, "the user cancelled the sign-in") }
        let username = String((form["username"] ?? "").prefix(255))
        let password = form["password"] ?? ""
        guard !username.isEmpty, !password.isEmpty else {
            return Answer(step: .signIn(pending, message: "Enter your username and password.", username: username, status: 400), session: session)
        }
        let keys = FailureThrottle.user(username, address: address)
        let check: FailureCheck
        do { check = try await throttle.check(keys) } catch { return failed(pending.request, error) }
        if let wait = check.retryAfter {
            events(.signIn(.throttled))
            log("sign-in throttled after repeated failures")
            return Answer(
                step: .signIn(pending, message: "Too many failed sign-ins. Try again in \(wait) seconds.", username: username, status: 429),
                session: session)
        }
        let found: User?
        do { found = try await passwords.authenticate(username, password) } catch is PasswordChecker.Busy {
            log("sign-in refused: the password check queue is full")
            return Answer(
                step: .signIn(pending, message: "The server is busy. Try again in a moment.", username: username, status: 503), session: session)
        } catch {
            return failed(pending.request, error)
        }
        guard let user = found else {
            do { try await throttle.recordFailure(keys) } catch { return failed(pending.request, error) }
            events(.signIn(.failed))
            log("sign-in failed: wrong password or unknown user \(username)")
            return Answer(step: .signIn(pending, message: "The username or password is wrong.", username: username, status: 200), session: session)
        }
        events(.signIn(.ok))
        do {
            try await throttle.clear(after: check)
            let signedIn = try await sessions.signIn(session, user: user, handle: pending.handle)
            log("signed in \(user.username)")
            guard let moved = try await sessions.pending(pending.handle, in: signedIn) else { return expired(signedIn) }
            return try await advance(moved, session: signedIn, user: user)
        } catch {
            return failed(pending.request, error)
        }
    }

    /// `POST /authorize/consent`: `handle`, `csrf_token`, `decision` (`allow` or `deny`), `remember`.
    public func consent(_ form: [String: String], cookie: String?) async -> Answer {
        let pending: PendingAuthorization
        let session: BrowserSession
        switch await resume(form, cookie: cookie) {
        case .answered(let answer): return answer
        case .form(let found, let owner): (pending, session) = (found, owner)
        }
        guard let user = signedInUser(session) else {
            return Answer(step: .signIn(pending, message: "Your sign-in expired; sign in again.", username: nil, status: 200), session: session)
        }
        let username = user.username
        switch form["decision"] {
        case "allow":
            do {
                if form["remember"] == "on" {
                    try await consents.remember(
                        username: username, clientID: pending.request.client.id, scope: pending.request.consentScope, now: clock.now())
                }
                let location = try await issueCode(pending.request, user: user, session: session)
                try await sessions.close(pending.handle, in: session)
                events(.consent(allowed: true))
                log("consent given by \(username) to \(pending.request.client.id)")
                return Answer(step: .redirect(location), session: session)
            } catch {
                return failed(pending.request, error)
            }
        case "deny":
            events(.consent(allowed: false))
            return await deny(pending, session: session, "the user denied the request")
        default:
            return Answer(step: .consent(pending, username: username), session: session)
        }
    }

    // MARK: - Steps

    /// Sign-in first (unless signed in, recently enough for `max_age`, as the user an `id_token_hint` names,
    /// and not asked to again by `prompt=login`), then consent (unless remembered, and not asked for by
    /// `prompt=consent`), then the code. `user` is the session's user, already checked to exist.
    private func advance(_ pending: PendingAuthorization, session: BrowserSession, user: User?) async throws -> Answer {
        let request = pending.request
        guard let user, !signInNeeded(request, session, signedInHere: pending.signedInHere),
            pending.signedInHere || (pending.hintedSubject.map { $0.sameBytes(as: user.subject) } ?? true)
        else {
            return Answer(step: .signIn(pending, message: nil, username: request.loginHint, status: 200), session: session)
        }
        let remembered = try await rememberedConsent(user.username, request)
        if request.prompt.contains("consent") || !remembered {
            return Answer(step: .consent(pending, username: user.username), session: session)
        }
        let location = try await issueCode(request, user: user, session: session)
        try await sessions.close(pending.handle, in: session)
        return Answer(step: .redirect(location), session: session)
    }

    /// Whether the request asks for a new sign-in although the session has one: `prompt=login` or
    /// `select_account` (one account per session here, so choosing one is signing in), or a sign-in older
    /// than `max_age` (Core §3.1.2.1; `max_age=0` always). A sign-in done for this very request counts.
    private func signInNeeded(_ request: AuthorizationRequest, _ session: BrowserSession, signedInHere: Bool) -> Bool {
        if signedInHere { return false }
        if request.prompt.contains("login") || request.prompt.contains("select_account") { return true }
        guard let maxAge = request.maxAge else { return false }
        guard let authTime = session.authTime else { return true }
        return maxAge == 0 || clock.now().timeIntervalSince(authTime) > Double(maxAge)
    }

    /// Whether the user's remembered consent covers the request *and may stand in for asking*. RFC 8252
    /// §8.6: a public client whose code goes to a loopback address or a private-use scheme cannot prove who it
    /// is — any local process can claim its client id and listen there — so such a request always shows the
    /// consent page (and `prompt=none` answers `consent_required`). A public client with an https redirect
    /// URI is bound to its origin, a confidential one to its secret: remembered consent counts for them.
    private func rememberedConsent(_ username: String, _ request: AuthorizationRequest) async throws -> Bool {
        let identityAssured = request.client.type == .confidential || request.redirectURI.lowercased().hasPrefix("https://")
        guard identityAssured else { return false }
        return try await consents.covers(username: username, clientID: request.client.id, scope: request.consentScope)
    }

    /// The session's user, if they still exist (a removed user's sessions stop counting at once, and a
    /// new user given the same name is someone else: the `sub` must match too).
    private func signedInUser(_ session: BrowserSession) -> User? {
        guard let username = session.username, let user = try? users().named(username), let subject = session.subject,
            user.subject.sameBytes(as: subject)
        else { return nil }
        return user
    }

    /// Finds the session and its open request a form refers to, checking the CSRF token first.
    private func resume(_ form: [String: String], cookie: String?) async -> Resumed {
        let found: BrowserSession?
        do { found = try await sessions.session(cookie) } catch {
            return .answered(Answer(step: .errorPage(Self.unavailable, status: 503), session: nil))
        }
        guard let session = found, BrowserSessions.checkCSRF(form["csrf_token"], for: session) else {
            log("form refused: missing or wrong CSRF token, or no session")
            return .answered(
                Answer(
                    step: .errorPage(
                        OAuthError(
                            .invalidRequest,
                            "This form did not come from this sign-in page, or the page expired. Go back to the application and start again.",
                            log: "missing or wrong CSRF token, or no session cookie"), status: 403), session: nil))
        }
        let open: PendingAuthorization?
        do { open = try await sessions.pending(form["handle"], in: session) } catch {
            return .answered(Answer(step: .errorPage(Self.unavailable, status: 503), session: session))
        }
        guard let pending = open else { return .answered(expired(session)) }
        // The client may have been changed or removed since the request was opened.
        guard let client = clients().client(pending.request.client.id), client.registeredRedirectURI(matching: pending.request.redirectURI) != nil
        else {
            try? await sessions.close(pending.handle, in: session)
            return .answered(
                Answer(
                    step: .errorPage(OAuthError(.invalidRequest, "The application is no longer registered for this sign-in."), status: 400),
                    session: session))
        }
        return .form(pending, session)
    }

    /// The page shown when the session store cannot be reached (no request to redirect to yet).
    static let unavailable = OAuthError(.temporarilyUnavailable, "Sign-in is unavailable for a moment. Try again shortly.")

    private func expired(_ session: BrowserSession) -> Answer {
        Answer(
            step: .errorPage(
                OAuthError(.invalidRequest, "This sign-in took too long or is already finished. Go back to the application and start again."),
                status: 400),
            session: session)
    }

    private func deny(_ pending: PendingAuthorization, session: BrowserSession, _ reason: String) async -> Answer {
        // Closing is tidying up: the request expires anyway, and the denial must reach the client.
        try? await sessions.close(pending.handle, in: session)
        log(reason)
        return Answer(step: .redirect(redirect(pending.request, OAuthError(.accessDenied, reason))), session: session)
    }

    private func failed(_ request: AuthorizationRequest, _ error: any Error) -> Answer {
        log("authorization failed: \(error)")
        let code: OAuthError.Code = (error as? OAuthError)?.code == .temporarilyUnavailable ? .temporarilyUnavailable : .serverError
        return Answer(step: .redirect(redirect(request, OAuthError(code, "the authorization server could not complete the request"))), session: nil)
    }

    private func issueCode(_ request: AuthorizationRequest, user: User, session: BrowserSession) async throws -> String {
        let openID = request.isOpenID ? OpenIDGrant(sessionID: session.sessionID ?? "", claims: request.claims) : nil
        let code = try await codes.issue(
            AuthorizationCodeGrantRecord(
                clientID: request.client.id, redirectURI: request.redirectURISent ? request.redirectURI : nil, challenge: request.challenge,
                scope: request.scope, subject: user.subject, authTime: session.authTime ?? clock.now(), openID: openID,
                nonce: request.isOpenID ? request.nonce : nil))
        return AuthorizationRequest.redirect(to: request.redirectURI, [("code", code)], state: request.state, issuer: issuer)
    }

    private func redirect(_ request: AuthorizationRequest, _ error: OAuthError) -> String {
        redirect(request.redirectURI, error, state: request.state)
    }

    private func redirect(_ uri: String, _ error: OAuthError, state: String?) -> String {
        AuthorizationRequest.redirect(
            to: uri, [("error", error.code.rawValue), ("error_description", error.description)], state: state, issuer: issuer)
    }

    /// A form post either refers to a live request of its session, or is already answered (refused).
    private enum Resumed {
        case form(PendingAuthorization, BrowserSession)
        case answered(Answer)
    }
}
