import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TesseraIssuer
import TesseraJOSE

/// The `/authorize` endpoint and its pages: server-rendered HTML without JavaScript or third-party
/// resources, one small style sheet inline (allowed by its hash in the Content-Security-Policy).
struct AuthorizePages: Sendable {
    let flow: AuthorizationFlow
    /// The path the issuer URL ends in ("" or "/prefix"), for form actions behind a path-routing proxy.
    let basePath: String
    let cookieName: String
    let secureCookie: Bool
    let cookieLifetime: Int

    init(service: TokenService) {
        flow = service.authorization
        let configuration = service.configuration
        basePath = URLComponents(string: configuration.issuerURL)?.path ?? ""
        // The cookie is Secure unless the issuer is plain http on loopback (a development set-up); a Secure
        // cookie may carry the __Host- prefix, which pins it to this host and path "/".
        secureCookie = !(configuration.issuerIsPlainHTTP && configuration.issuerIsLoopback)
        cookieName = secureCookie ? "__Host-tessera-session" : "tessera-session"
        cookieLifetime = Int(service.sessions.policy.absoluteLifetime)
    }

    // MARK: - Routes

    func authorizeGET(_ request: Request) async -> Response {
        let query = request.uri.query ?? ""
        guard query.utf8.count <= 8 * 1_024 else {
            return errorPage(OAuthError(.invalidRequest, "The authorization request is too long."), status: .badRequest)
        }
        do {
            return render(await flow.authorize(try TokenRequest.parseForm(query), cookie: cookie(request)), request: request)
        } catch let error as OAuthError {
            return errorPage(error, status: .badRequest)
        } catch {
            return errorPage(OAuthError(.invalidRequest, "The authorization request could not be read."), status: .badRequest)
        }
    }

    /// RFC 6749 §3.1: the authorization endpoint MAY take POST; the parameters are then the form body.
    func authorizePOST(_ request: Request, limit: Int) async -> Response {
        await withForm(request, limit: limit) { form in await flow.authorize(form, cookie: cookie(request)) }
    }

    func signIn(_ request: Request, context: TesseraRequestContext, limit: Int) async -> Response {
        await withForm(request, limit: limit) { form in
            await flow.signIn(form, cookie: cookie(request), address: context.remoteAddress?.ipAddress)
        }
    }

    func consent(_ request: Request, limit: Int) async -> Response {
        await withForm(request, limit: limit) { form in await flow.consent(form, cookie: cookie(request)) }
    }

    private func withForm(_ request: Request, limit: Int, _ body: ([String: String]) async -> AuthorizationFlow.Answer) async -> Response {
        await withParameters(request, limit: limit) { form in render(await body(form), request: request) }
    }

    /// Runs `body` with the parameters of a form post; an unreadable or oversized form gets an error page.
    func withParameters(_ request: Request, limit: Int, _ body: ([String: String]) async -> Response) async -> Response {
        do {
            let form = try await formRequest(request, limit: limit)
            return await body(form.parameters)
        } catch let error as OAuthError {
            return errorPage(error, status: .badRequest)
        } catch is BodyTooLarge {
            return errorPage(OAuthError(.invalidRequest, "The form is larger than \(limit) bytes."), status: .contentTooLarge)
        } catch {
            return errorPage(OAuthError(.invalidRequest, "The form could not be read."), status: .badRequest)
        }
    }

    /// The session cookie: the first `Cookie` header value of our name.
    func cookie(_ request: Request) -> String? {
        for header in request.headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let parts = pair.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0] == cookieName { return String(parts[1]) }
            }
        }
        return nil
    }

    // MARK: - Answers

    private func render(_ answer: AuthorizationFlow.Answer, request: Request) -> Response {
        var response: Response
        switch answer.step {
        case .redirect(let location):
            // RFC 9700 §4.12: 303, so a browser never re-sends the form (and its password) to the client.
            response = Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store", pragma: "no-cache"])
        case .errorPage(let error, let status):
            response = errorPage(error, status: HTTPResponse.Status(code: status))
        case .signIn(let pending, let message, let username, let status):
            response = page(
                signInPage(pending, csrf: answer.session?.csrfToken ?? "", message: message, username: username),
                status: HTTPResponse.Status(code: status), redirectURI: pending.request.redirectURI)
        case .consent(let pending, let username):
            response = page(
                consentPage(pending, csrf: answer.session?.csrfToken ?? "", username: username), status: .ok,
                redirectURI: pending.request.redirectURI)
        }
        if let session = answer.session, session.cookie != cookie(request) {
            response.headers.append(HTTPField(name: .setCookie, value: setCookie(session.cookie, maxAge: cookieLifetime)))
        }
        return response
    }

    /// The session cookie's `Set-Cookie` value (`maxAge` 0 and an empty value clear it).
    func setCookie(_ value: String, maxAge: Int) -> String {
        "\(cookieName)=\(value); Path=/; Max-Age=\(maxAge); HttpOnly; SameSite=Lax" + (secureCookie ? "; Secure" : "")
    }

    func errorPage(_ error: OAuthError, status: HTTPResponse.Status) -> Response {
        let body = """
            <h1>This sign-in cannot continue</h1>
            <p role="alert">\(escape(error.description))</p>
            <p class="detail">You have not been sent back to the application. If this keeps happening, tell its developers.
            Error code: <code>\(escape(error.code.rawValue))</code></p>
            """
        return page(layout(title: "Sign-in error", body), status: status, redirectURI: nil)
    }

    /// An HTML page with the headers every page here has: no caching (RFC 6749 §10.12, the pages carry
    /// CSRF tokens), no Referer leaving the page (RFC 9700 §4.2.4), no framing (RFC 9700 §4.16), and a CSP
    /// that allows nothing but the inline style and form posts to here and to the client's redirect URI
    /// (browsers apply `form-action` to the redirect that follows a post).
    func page(_ html: String, status: HTTPResponse.Status, redirectURI: String?) -> Response {
        var formTargets = "'self'"
        if let redirectURI, let source = Self.cspSource(redirectURI) { formTargets += " " + source }
        let headers: HTTPFields = [
            .contentType: "text/html; charset=utf-8", .cacheControl: "no-store", pragma: "no-cache",
            HTTPField.Name("Referrer-Policy")!: "no-referrer",
            HTTPField.Name("X-Frame-Options")!: "DENY",
            HTTPField.Name("X-Content-Type-Options")!: "nosniff",
            HTTPField.Name("Content-Security-Policy")!:
                "default-src 'none'; style-src '\(Self.styleHash)'; form-action \(formTargets); frame-ancestors 'none'; base-uri 'none'",
        ]
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// The CSP source that admits a redirect URI: its origin for http(s), its scheme for a native app's.
    static func cspSource(_ uri: String) -> String? {
        guard let components = URLComponents(string: uri), let scheme = components.scheme?.lowercased() else { return nil }
        guard scheme == "http" || scheme == "https" else { return scheme + ":" }
        guard let host = components.percentEncodedHost, !host.isEmpty,
            host.allSatisfy({ $0.isLetter || $0.isNumber || "-.:[]".contains($0) })
        else { return nil }
        return "\(scheme)://\(host)" + (components.port.map { ":\($0)" } ?? "")
    }

    // MARK: - Pages

    private func signInPage(_ pending: PendingAuthorization, csrf: String, message: String?, username: String?) -> String {
        let client = escape(pending.request.client.id)
        var body = """
            <h1>Sign in</h1>
            <p>to continue to <strong>\(client)</strong></p>

            """
        if let message { body += "<p class=\"error\" role=\"alert\" id=\"sign-in-error\">\(escape(message))</p>\n" }
        let describedBy = message == nil ? "" : " aria-describedby=\"sign-in-error\""
        body += """
            <form method="post" action="\(escape(basePath))/authorize/sign-in">
            \(hiddenFields(pending, csrf: csrf))
            <label for="username">Username</label>
            <input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" spellcheck="false"
             required maxlength="255" value="\(escape(username ?? ""))"\(describedBy)>
            <label for="password">Password</label>
            <input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024"\(describedBy)>
            <div class="actions">
            <button type="submit" name="sign_in" value="1">Sign in</button>
            <button type="submit" name="cancel" value="1" class="secondary" formnovalidate>Cancel</button>
            </div>
            </form>
            """
        return layout(title: "Sign in to continue to \(pending.request.client.id)", body)
    }

    private func consentPage(_ pending: PendingAuthorization, csrf: String, username: String) -> String {
        let client = escape(pending.request.client.id)
        let scopes =
            pending.request.consentScope.isEmpty
            ? "<li>sign you in (no further access)</li>"
            : pending.request.consentScope.map { scope in
                ConsentWording.phrase(forScope: scope).map { "<li>\(escape($0))</li>" } ?? "<li><code>\(escape(scope))</code></li>"
            }.joined(separator: "\n")
        let body = """
            <h1>Allow access?</h1>
            <p><strong>\(client)</strong> asks for access to your account (<strong>\(escape(username))</strong>):</p>
            <ul class="scopes" aria-label="Requested access">
            \(scopes)
            </ul>
            <p class="detail">You will be sent back to <span class="uri">\(escape(pending.request.redirectURI))</span>.</p>
            <form method="post" action="\(escape(basePath))/authorize/consent">
            \(hiddenFields(pending, csrf: csrf))
            <div class="check"><input id="remember" name="remember" type="checkbox"><label for="remember">Remember this for \(client)</label></div>
            <div class="actions">
            <button type="submit" name="decision" value="allow">Allow</button>
            <button type="submit" name="decision" value="deny" class="secondary">Deny</button>
            </div>
            </form>
            """
        return layout(title: "Allow \(pending.request.client.id) access?", body)
    }

    private func hiddenFields(_ pending: PendingAuthorization, csrf: String) -> String {
        """
        <input type="hidden" name="handle" value="\(escape(pending.handle))">
        <input type="hidden" name="csrf_token" value="\(escape(csrf))">
        """
    }

    func layout(title: String, _ body: String) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="no-referrer">
        <title>\(escape(title))</title>
        <style>\(Self.style)</style>
        </head>
        <body>
        <main>
        \(body)
        </main>
        </body>
        </html>
        """
    }

    static let style = """
        :root{color-scheme:light dark;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;line-height:1.5}
        body{margin:0;padding:1rem;background:Canvas;color:CanvasText}
        main{max-width:26rem;margin:2rem auto;padding:1.5rem;border:1px solid GrayText;border-radius:.5rem}
        h1{font-size:1.5rem;margin:0 0 .5rem}
        label{display:block;margin:1rem 0 .25rem;font-weight:600}
        input[type=text],input[type=password]{box-sizing:border-box;width:100%;padding:.6rem;font-size:1rem;border:1px solid GrayText;border-radius:.25rem}
        .check{display:flex;align-items:center;gap:.5rem;margin:1rem 0}.check label{margin:0;font-weight:400}
        .check input{width:1.25rem;height:1.25rem}
        .actions{display:flex;flex-wrap:wrap;gap:.75rem;margin-top:1.25rem}
        button{flex:1 1 8rem;min-height:2.75rem;padding:.6rem 1rem;font-size:1rem;border-radius:.25rem;border:1px solid #1a56db;background:#1a56db;color:#fff;cursor:pointer}
        button.secondary{background:transparent;color:inherit;border-color:GrayText}
        button:focus-visible,input:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
        .error{color:#b91c1c;font-weight:600}
        @media (prefers-color-scheme:dark){.error{color:#fca5a5}}
        .scopes{padding-left:1.25rem}.detail{font-size:.9rem;color:GrayText}.uri{word-break:break-all}
        """

    /// `sha256-…` of the inline style, for the Content-Security-Policy.
    static let styleHash = "sha256-" + Data(Digest.sha256(Array(style.utf8))).base64EncodedString()
}

/// HTML-escapes text for element content and double-quoted attribute values.
func escape(_ text: String) -> String {
    var escaped = ""
    escaped.reserveCapacity(text.utf8.count)
    for character in text {
        switch character {
        case "&": escaped += "&amp;"
        case "<": escaped += "&lt;"
        case ">": escaped += "&gt;"
        case "\"": escaped += "&quot;"
        case "'": escaped += "&#39;"
        default: escaped.append(character)
        }
    }
    return escaped
}
