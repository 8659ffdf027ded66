import Foundation
import TesseraIssuer
import TesseraJOSE
import TesseraTestSupport
import TesseraVerifier
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Where the screenshots go: `$TESSERA_ARTIFACTS/authorize-browser`, or `.build/artifacts/authorize-browser`
/// in the package (ignored by git; CI keeps it as an artifact).
let browserArtifacts: String = {
    let base =
        ProcessInfo.processInfo.environment["TESSERA_ARTIFACTS"]
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/artifacts").path
    return base + "/authorize-browser"
}()

@Suite("A real browser: headless Chromium signs in and consents against tessera serve", .serialized)
struct BrowserTests {
    /// Checks a person could use the page on this screen: nothing wider than the viewport, every visible
    /// input labelled, the language set, every button named and inside the screen. Returns what is wrong.
    static let usability = """
        (() => {
          const problems = [];
          if (document.documentElement.scrollWidth > window.innerWidth) problems.push('wider than the screen: ' + document.documentElement.scrollWidth);
          if (!document.documentElement.lang) problems.push('no lang');
          for (const input of document.querySelectorAll('input:not([type=hidden])')) if (input.labels.length === 0) problems.push('unlabelled ' + input.name);
          for (const button of document.querySelectorAll('button')) {
            const r = button.getBoundingClientRect();
            if (!button.textContent.trim()) problems.push('unnamed button');
            if (r.left < 0 || r.right > window.innerWidth || r.height < 40) problems.push('button ' + button.textContent + ' off screen or small');
          }
          if (!document.querySelector('h1')) problems.push('no heading');
          return problems;
        })()
        """

    @Test(
        "Sign-in (a wrong password, then the right one), consent and the code in Chromium at phone width; the tokens verify; screenshots kept",
        .disabled(if: Chromium.skipped, "TESSERA_SKIP_BROWSER=1"))
    func chromiumSignInAndConsent() async throws {
        let server = try ServeProcess()
        #expect(
            try await runTessera([
                "clients", "add", "phone-app", "--public", "--scope", "read", "--scope", "profile",
                "--redirect-uri", "http://127.0.0.1/callback", "--data", server.data,
            ]).status == 0)
        #expect(
            try await runTessera(["users", "add", "alice", "--password-stdin", "--data", server.data], stdin: "correct horse battery\n").status == 0)
        try await server.start()
        defer { server.stop() }
        try FileManager.default.createDirectory(atPath: browserArtifacts, withIntermediateDirectories: true)
        let browser = try Chromium(log: browserArtifacts + "/chromium.log")
        defer { browser.kill() }
        try await browser.openPage()
        try await browser.send("Emulation.setDeviceMetricsOverride", ["width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true])
        // The app's loopback callback (RFC 8252 §7.3, any port): the browser's request to it is intercepted
        // and answered here, so its URL (code, state, iss) is read exactly as the app would read it.
        let callback = "http://127.0.0.1:7/callback"
        try await browser.send("Fetch.enable", ["patterns": [["urlPattern": callback + "*"]]])

        let verifier = Base64URL.encode(try SecureRandom.bytes(count: 32))
        let challenge = Base64URL.encode(Digest.sha256(Array(verifier.utf8)))
        let state = "chromium-" + Base64URL.encode(try SecureRandom.bytes(count: 8))
        let query = formEncode([
            ("response_type", "code"), ("client_id", "phone-app"), ("redirect_uri", callback), ("scope", "read profile"),
            ("state", state), ("code_challenge", challenge), ("code_challenge_method", "S256"),
        ])
        try await browser.navigate(server.base + "/authorize?" + query)
        #expect(try await browser.evaluate("document.title") as? String == "Sign in to continue to phone-app")
        #expect(try await browser.evaluate(Self.usability) as? [String] == [])
        try await browser.screenshot(browserArtifacts + "/1-sign-in-phone.png")

        try await browser.type("#username", "alice")
        try await browser.type("#password", "not the password")
        try await browser.click("button[name=sign_in]")
        #expect(try await browser.evaluate("document.querySelector('[role=alert]').textContent") as? String == "The username or password is wrong.")
        #expect(try await browser.evaluate("document.querySelector('#username').value") as? String == "alice")
        #expect(try await browser.evaluate(Self.usability) as? [String] == [])
        try await browser.screenshot(browserArtifacts + "/2-sign-in-error-phone.png")

        try await browser.type("#password", "correct horse battery")
        try await browser.click("button[name=sign_in]")
        #expect(try await browser.evaluate("document.querySelector('h1').textContent") as? String == "Allow access?")
        #expect(
            try await browser.evaluate("[...document.querySelectorAll('.scopes li')].map(e => e.textContent)") as? [String] == [
                "read", try #require(ConsentWording.phrase(forScope: "profile")),
            ])
        #expect(try await browser.evaluate(Self.usability) as? [String] == [])
        // The cookie the browser keeps: HttpOnly (scripts cannot read it), SameSite=Lax, host-only.
        #expect(try await browser.evaluate("document.cookie") as? String == "")
        let cookies = try await browser.send("Storage.getCookies", toPage: false)["cookies"] as? [[String: Any]] ?? []
        let cookie = try #require(cookies.first { $0["name"] as? String == "tessera-session" })
        #expect(cookie["httpOnly"] as? Bool == true && cookie["sameSite"] as? String == "Lax" && cookie["path"] as? String == "/")
        let csrf = try #require(try await browser.evaluate("document.querySelector('input[name=csrf_token]').value") as? String)
        try await browser.screenshot(browserArtifacts + "/3-consent-phone.png")

        try await browser.click("button[value=allow]", waitForLoad: false)
        let paused = try await browser.wait(for: "Fetch.requestPaused")
        let url = try #require((paused["request"] as? [String: Any])?["url"] as? String)
        let page = Data(
            "<!doctype html><html lang=en><meta name=viewport content='width=device-width'><title>phone-app</title><h1>Signed in</h1><p>The app received its code.</p></html>"
                .utf8)
        try await browser.send(
            "Fetch.fulfillRequest",
            [
                "requestId": paused["requestId"] as Any, "responseCode": 200,
                "responseHeaders": [["name": "Content-Type", "value": "text/html"]], "body": page.base64EncodedString(),
            ])
        _ = try await browser.wait(for: "Page.loadEventFired")
        try await browser.screenshot(browserArtifacts + "/4-back-at-the-app-phone.png")

        let items = Dictionary((URLComponents(string: url)?.queryItems ?? []).map { ($0.name, $0.value ?? "") }) { first, _ in first }
        #expect(url.hasPrefix(callback + "?code=tac_") && items["state"] == state && items["iss"] == server.base)
        let tokens = try await server.request(
            "/token",
            form: [
                "grant_type": "authorization_code", "code": try #require(items["code"]), "client_id": "phone-app",
                "redirect_uri": callback, "code_verifier": verifier,
            ])
        #expect(tokens.status == 200 && tokens.json["scope"] as? String == "read profile")
        let (jwks, _) = try await URLSession.shared.data(from: URL(string: server.base + "/.well-known/jwks.json")!)
        let keys = try VerificationKeySet(jwks: try JWKSet(json: String(decoding: jwks, as: UTF8.self)))
        var configuration = AccessTokenVerifier.Configuration(issuer: server.base, audience: "api")
        configuration.leeway = 5
        let token = try AccessTokenVerifier(configuration: configuration, keys: keys).verify(
            try #require(tokens.json["access_token"] as? String), using: keys)
        let alice = try #require(try UserStore(dataPath: server.data).users().named("alice"))
        #expect(token.subject == alice.subject && token.clientID == "phone-app" && token.scopes == ["read", "profile"])
        let refreshToken = try #require(tokens.json["refresh_token"] as? String)
        let refreshed = try await server.request(
            "/token", form: ["grant_type": "refresh_token", "refresh_token": refreshToken, "client_id": "phone-app"])
        #expect(refreshed.status == 200)

        // The same pages at desktop width, and the error page a wrong redirect URI gets.
        try await browser.send("Emulation.setDeviceMetricsOverride", ["width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": false])
        try await browser.navigate(server.base + "/authorize?" + query.replacingOccurrences(of: "state=", with: "prompt=consent&state="))
        #expect(try await browser.evaluate("document.querySelector('h1').textContent") as? String == "Allow access?")
        try await browser.screenshot(browserArtifacts + "/5-consent-desktop.png")
        try await browser.send("Emulation.setDeviceMetricsOverride", ["width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true])
        try await browser.navigate(server.base + "/authorize?response_type=code&client_id=phone-app&redirect_uri=https%3A%2F%2Fevil.example%2F")
        #expect(
            try await browser.evaluate("location.href") as? String == server.base
                + "/authorize?response_type=code&client_id=phone-app&redirect_uri=https%3A%2F%2Fevil.example%2F")
        #expect(try await browser.evaluate(Self.usability) as? [String] == [])
        try await browser.screenshot(browserArtifacts + "/6-error-phone.png")
        await browser.close()

        // THREATS B17: none of the secrets of this flow is in the server's log or in any file it wrote.
        server.stop()
        let canaries = [
            "correct horse battery", "not the password", try #require(items["code"]), verifier, refreshToken,
            try #require(tokens.json["access_token"] as? String), try #require(refreshed.json["refresh_token"] as? String),
            try #require(cookie["value"] as? String), csrf,
        ]
        let log = try String(contentsOfFile: server.logPath, encoding: .utf8)
        #expect(log.contains("path=/authorize/sign-in") && log.contains("wrong password or unknown user alice"), "\(log.prefix(600))")
        for file in server.writtenFiles() {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
            for canary in canaries { #expect(bytes.range(of: Data(canary.utf8)) == nil, "\(canary.prefix(8))… found in \(file)") }
        }
    }
}
