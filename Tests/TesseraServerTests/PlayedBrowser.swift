import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import TesseraIssuer
import TesseraJOSE
import TesseraTestSupport
import TesseraVerifier
import Testing

@testable import TesseraServer

/// Plays a browser against the server on a loopback socket: keeps cookies, follows redirects that stay
/// on the server, stops at one that leaves for a client's redirect URI, and reads and submits forms the
/// way a browser does (hidden fields, the pressed button's name and value, nothing else).
final class PlayedBrowser: @unchecked Sendable {
    let client: any TestClientProtocol
    static let origin = "http://127.0.0.1:8080"
    private(set) var cookies: [String: String] = [:]
    /// Every reply seen, in order.
    private(set) var replies: [Reply] = []

    init(_ client: any TestClientProtocol) { self.client = client }

    struct Form {
        var action: String
        var fields: [(name: String, value: String)]
        var buttons: [(name: String, value: String)]
    }

    func open(_ path: String) async throws -> Reply {
        try await follow(try await send(path, method: .get, body: nil))
    }

    /// Submits `form` with `values` typed in, `button` pressed, and `dropping` removed (a forged post).
    func submit(_ form: Form, button: String? = nil, _ values: [String: String] = [:], dropping: Set<String> = []) async throws -> Reply {
        var pairs = form.fields.filter { !dropping.contains($0.name) }.map { ($0.name, values[$0.name] ?? $0.value) }
        for (name, value) in values where !form.fields.contains(where: { $0.name == name }) { pairs.append((name, value)) }
        if let button, let pressed = form.buttons.first(where: { $0.name == button || $0.value == button }) { pairs.append(pressed) }
        return try await follow(try await send(form.action, method: .post, body: formEncode(pairs)))
    }

    /// The forms of a page, as a browser would see them.
    static func forms(_ html: String) -> [Form] {
        matches(#"<form method="post" action="([^"]*)">([\s\S]*?)</form>"#, in: html).map { form in
            let inputs = matches(#"<input ([^>]*)>"#, in: form[2]).map { attributes($0[1]) }
            let fields = inputs.filter { ["hidden", "text", "password"].contains($0["type"] ?? "text") }.compactMap { input in
                input["name"].map { (name: $0, value: input["value"] ?? "") }
            }
            let buttons = matches(#"<button ([^>]*)>"#, in: form[2]).map { attributes($0[1]) }.compactMap { button in
                button["name"].map { (name: $0, value: button["value"] ?? "") }
            }
            return Form(action: unescapeHTML(form[1]), fields: fields, buttons: buttons)
        }
    }

    private func send(_ path: String, method: HTTPRequest.Method, body: String?) async throws -> Reply {
        var headers: HTTPFields = [:]
        if !cookies.isEmpty { headers[.cookie] = cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; ") }
        if body != nil { headers[.contentType] = "application/x-www-form-urlencoded" }
        let reply = try await client.execute(uri: path, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) }) { response in
            Reply(status: response.status, headers: response.headers, body: String(buffer: response.body))
        }
        for header in reply.headers[values: .setCookie] {
            let pair = header.split(separator: ";")[0].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pair.count == 2 else { continue }
            // An empty value with Max-Age=0 clears the cookie (RFC 6265 §5.3).
            cookies[String(pair[0])] = pair[1].isEmpty || header.contains("Max-Age=0") ? nil : String(pair[1])
        }
        replies.append(reply)
        return reply
    }

    /// Follows redirects within the server; a redirect elsewhere (the client's callback) is returned.
    private func follow(_ reply: Reply) async throws -> Reply {
        var reply = reply
        while (300..<400).contains(reply.status.code), let location = reply.headers[.location], location.hasPrefix(Self.origin + "/") {
            reply = try await send(String(location.dropFirst(Self.origin.count)), method: .get, body: nil)
        }
        return reply
    }

    static func matches(_ pattern: String, in text: String) -> [[String]] {
        let expression = try! NSRegularExpression(pattern: pattern)
        let string = text as NSString
        return expression.matches(in: text, range: NSRange(location: 0, length: string.length)).map { match in
            (0..<match.numberOfRanges).map { match.range(at: $0).location == NSNotFound ? "" : string.substring(with: match.range(at: $0)) }
        }
    }

    static func attributes(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for match in matches(#"([a-z-]+)(?:="([^"]*)")?"#, in: text) { result[match[1]] = unescapeHTML(match[2]) }
        return result
    }

    static func unescapeHTML(_ text: String) -> String {
        text.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&amp;", with: "&")
    }
}

func formEncode(_ pairs: [(String, String)]) -> String {
    let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
    return pairs.map {
        "\($0.0.addingPercentEncoding(withAllowedCharacters: allowed)!)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed)!)"
    }
    .joined(separator: "&")
}

extension Reply {
    var forms: [PlayedBrowser.Form] { PlayedBrowser.forms(body) }
    var location: String? { headers[.location] }
    /// The query parameters of the redirect's `Location`.
    var callback: [String: String] {
        guard let location, let items = URLComponents(string: location)?.queryItems else { return [:] }
        return Dictionary(items.map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { first, _ in first })
    }
}

/// A PKCE pair (RFC 7636 §4.1–4.2).
struct PKCEPair {
    let verifier = Base64URL.encode(try! SecureRandom.bytes(count: 32))
    var challenge: String { Base64URL.encode(Digest.sha256(Array(verifier.utf8))) }
}

/// A server with a signed-up user `alice`, a public client `app` (read, write; https://app.example/cb and
/// a loopback URI) and the fixture's confidential client `svc` (it introspects).
struct AuthorizeFixture {
    static let password = "correct horse battery"
    let server: ServerFixture
    let clock: SteppedClock

    /// The throttle reads the stepped clock too: a block lasts until the test moves time, however slowly
    /// a busy machine runs the sign-ins.
    init(extra: [Client] = []) throws {
        let clock = SteppedClock(Date())
        self.clock = clock
        let app = Client(
            id: "web", type: .public, secretDigest: nil, grants: [.authorizationCode, .refreshToken], scopes: ["read", "write"],
            defaultScopes: ["read"], audience: "api", redirectURIs: ["https://web.example/cb", "http://127.0.0.1/native/cb"], created: Date())
        let throttle = FailureThrottle(now: { [clock] in clock.now.timeIntervalSince1970 })
        server = try ServerFixture(throttle: throttle, clock: clock.wallClock, clients: [app] + extra)
        try UserStore(dataPath: server.service.configuration.dataPath).add("alice", password: Self.password, now: Date())
    }

    func authorizePath(
        client: String = "web", redirect: String? = "https://web.example/cb", scope: String? = "read write",
        state: String? = "s-1", pkce: PKCEPair? = PKCEPair(), extra: [(String, String)] = []
    ) -> String {
        var pairs: [(String, String)] = [("response_type", "code"), ("client_id", client)]
        if let redirect { pairs.append(("redirect_uri", redirect)) }
        if let scope { pairs.append(("scope", scope)) }
        if let state { pairs.append(("state", state)) }
        if let pkce { pairs += [("code_challenge", pkce.challenge), ("code_challenge_method", "S256")] }
        return "/authorize?" + formEncode(pairs + extra)
    }

    /// Opens the request, signs in as alice unless the browser is signed in, allows; returns the reply
    /// that redirects to the client.
    func authorize(_ browser: PlayedBrowser, _ path: String, remember: Bool = false) async throws -> Reply {
        var consent = try await browser.open(path)
        if consent.body.contains("<h1>Sign in</h1>") {
            consent = try await browser.submit(
                try #require(consent.forms.first), button: "sign_in", ["username": "alice", "password": Self.password])
        }
        try #require(consent.body.contains("<h1>Allow access?</h1>"), "expected the consent page, got \(consent.status)")
        return try await browser.submit(try #require(consent.forms.first), button: "allow", remember ? ["remember": "on"] : [:])
    }

    func exchange(
        _ client: any TestClientProtocol, code: String, verifier: String?, redirect: String? = "https://web.example/cb",
        clientID: String = "web"
    ) async throws -> Reply {
        var pairs = [("grant_type", "authorization_code"), ("code", code), ("client_id", clientID)]
        if let redirect { pairs.append(("redirect_uri", redirect)) }
        if let verifier { pairs.append(("code_verifier", verifier)) }
        return try await post(client, "/token", formEncode(pairs))
    }

    func close() { server.close() }

    /// Runs `body` with a fresh fixture, the server on a loopback socket and a browser with no cookies.
    static func play(
        extra: [Client] = [], _ body: @Sendable (AuthorizeFixture, any TestClientProtocol, PlayedBrowser) async throws -> Void
    ) async throws {
        let fixture = try AuthorizeFixture(extra: extra)
        defer { fixture.close() }
        try await fixture.server.run(.live) { client in try await body(fixture, client, PlayedBrowser(client)) }
    }
}
