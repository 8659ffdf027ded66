import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import TesseraIssuer
import TesseraJOSE

// MARK: - RP-Initiated Logout 1.0 pages

extension AuthorizePages {
    /// `GET /logout`: the parameters in the query.
    func logoutGET(_ request: Request, flow: LogoutFlow) async -> Response {
        let query = request.uri.query ?? ""
        guard query.utf8.count <= 24 * 1_024, let parameters = try? TokenRequest.parseForm(query) else {
            return errorPage(OAuthError(.invalidRequest, "The sign-out request could not be read."), status: .badRequest)
        }
        return renderLogout(await flow.logout(parameters, cookie: cookie(request)))
    }

    /// `POST /logout`: an app's request as a form, or this server's confirmation form.
    func logoutPOST(_ request: Request, flow: LogoutFlow, limit: Int) async -> Response {
        await withParameters(request, limit: limit) { form in renderLogout(await flow.logout(form, cookie: cookie(request))) }
    }

    private func renderLogout(_ answer: LogoutFlow.Answer) -> Response {
        var response: Response
        switch answer.step {
        case .redirect(let location):
            response = Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store", pragma: "no-cache"])
        case .signedOut:
            response = page(
                layout(title: "Signed out", "<h1>You are signed out</h1>\n<p>You can close this window.</p>"), status: .ok, redirectURI: nil)
        case .stillSignedIn:
            response = page(
                layout(title: "Still signed in", "<h1>You are still signed in</h1>\n<p>Nothing was changed. You can close this window.</p>"),
                status: .ok, redirectURI: nil)
        case .confirm(let request):
            response = page(
                confirmLogoutPage(request, session: answer.session), status: .ok, redirectURI: request.postLogoutRedirectURI)
        case .errorPage(let error):
            let body = """
                <h1>This sign-out cannot continue</h1>
                <p role="alert">\(escape(error.description))</p>
                <p class="detail">Nothing was changed. Error code: <code>\(escape(error.code.rawValue))</code></p>
                """
            let status: HTTPResponse.Status = error.code == .temporarilyUnavailable ? .serviceUnavailable : .badRequest
            response = page(layout(title: "Sign-out error", body), status: status, redirectURI: nil)
        }
        if answer.ended { response.headers.append(HTTPField(name: .setCookie, value: setCookie("", maxAge: 0))) }
        return response
    }

    private func confirmLogoutPage(_ request: LogoutFlow.LogoutRequest, session: BrowserSession?) -> String {
        var hidden = "<input type=\"hidden\" name=\"csrf_token\" value=\"\(escape(session?.csrfToken ?? ""))\">\n"
        for (name, value) in [
            ("client_id", request.clientID), ("post_logout_redirect_uri", request.postLogoutRedirectURI), ("state", request.state),
        ] {
            if let value { hidden += "<input type=\"hidden\" name=\"\(name)\" value=\"\(escape(value))\">\n" }
        }
        let who = session?.username.map { " as <strong>\(escape($0))</strong>" } ?? ""
        let app = request.clientID.map { "<p><strong>\(escape($0))</strong> asks to sign you out.</p>\n" } ?? ""
        let body = """
            <h1>Sign out?</h1>
            \(app)<p>You are signed in\(who). Signing out here signs you out of every application you signed in to with this account on this browser.</p>
            <form method="post" action="\(escape(basePath))/logout">
            \(hidden)<div class="actions">
            <button type="submit" name="confirm" value="yes">Sign out</button>
            <button type="submit" name="confirm" value="no" class="secondary">Stay signed in</button>
            </div>
            </form>
            """
        return layout(title: "Sign out?", body)
    }
}

// MARK: - UserInfo (OpenID Connect Core §5.3)

/// `GET` or `POST /userinfo`: the token from the `Authorization` header, or (POST) the form body's
/// `access_token` (RFC 6750 §2.2); errors as RFC 6750 §3 challenges.
func userInfoResponse(_ request: Request, endpoint: UserInfoEndpoint, limit: Int, logger: Logger) async -> Response {
    do {
        guard request.headers[values: .authorization].count <= 1 else {
            throw OAuthError(.invalidRequest, "more than one Authorization header")
        }
        var bodyToken: String?
        if request.method == .post,
            request.headers[.contentType]?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
                == "application/x-www-form-urlencoded"
        {
            bodyToken = try await formRequest(request, limit: limit)["access_token"]
        }
        let claims = try await endpoint.handle(authorization: request.headers[.authorization], bodyToken: bodyToken)
        return jsonResponse(.ok, claims)
    } catch let error as OAuthError {
        logger.info("userinfo refused", metadata: ["error": .string(error.code.rawValue), "detail": .string(error.logMessage)])
        var challenge = #"Bearer realm="tessera""#
        let status: HTTPResponse.Status
        switch error.code {
        case .invalidRequest where error.logMessage == "no token":
            // RFC 6750 §3.1: a request without authentication gets the challenge and no error code.
            return jsonResponse(.unauthorized, JSONObject(), headers: [.wwwAuthenticate: challenge])
        case .invalidRequest: status = .badRequest
        case .insufficientScope: status = .forbidden
        case .temporarilyUnavailable: return errorResponse(error, request: request)
        default: status = .unauthorized
        }
        challenge += #", error="\#(error.code.rawValue)", error_description="\#(error.description.replacingOccurrences(of: "\"", with: "'"))""#
        if error.code == .insufficientScope { challenge += #", scope="openid""# }
        let object = JSONObject(["error": .string(error.code.rawValue), "error_description": .string(error.description)])
        return jsonResponse(status, object, headers: [.wwwAuthenticate: challenge])
    } catch is BodyTooLarge {
        return jsonResponse(.contentTooLarge, JSONObject(["error": .string("invalid_request")]))
    } catch {
        logger.error("userinfo failed", metadata: ["error": .string("\(type(of: error))")])
        return errorResponse(OAuthError(.temporarilyUnavailable, "the request could not be processed"), request: request)
    }
}
