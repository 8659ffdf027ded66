import Foundation
import TesseraJOSE
import TesseraTestSupport
import Testing

@testable import TesseraIssuer

/// The sign-in and consent flow as pure logic: a stepped clock, real users, consent and client files.
struct FlowFixture {
    let folder: TemporaryDirectory
    let clock = SteppedClock(Date(timeIntervalSince1970: 1_800_000_000))
    let flow: AuthorizationFlow
    let sessions: BrowserSessions
    static let password = "correct horse battery"
    let registry = ClientRegistry(clients: [
        Client(
            id: "app", type: .public, secretDigest: nil, grants: [.authorizationCode], scopes: ["read", "write"], defaultScopes: ["read"],
            audience: "api", redirectURIs: ["https://app.example/cb"], created: Date()),
        Client(
            id: "native", type: .public, secretDigest: nil, grants: [.authorizationCode], scopes: ["read"], defaultScopes: ["read"],
            audience: "api", redirectURIs: ["http://127.0.0.1/cb", "com.example.native:/cb"], created: Date()),
    ])

    init(policy: SessionPolicy = SessionPolicy()) throws {
        folder = try TemporaryDirectory("tessera-flow")
        let data = folder.appending("data")
        let registry = registry
        try UserStore(dataPath: data).add("alice", password: Self.password, now: Date())
        try UserStore(dataPath: data).add("bob", password: "bob's long password", now: Date())
        sessions = BrowserSessions(policy: policy, clock: clock.wallClock)
        flow = AuthorizationFlow(
            issuer: "https://as.example", clients: { registry }, users: { try UserStore(dataPath: data).users() },
            consents: ConsentStore(dataPath: data), codes: AuthorizationCodeStore(clock: clock.wallClock),
            sessions: sessions, throttle: FailureThrottle(now: { [clock] in clock.now.timeIntervalSince1970 }),
            clock: clock.wallClock)
    }

    var request: [String: String] {
        [
            "response_type": "code", "client_id": "app", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256", "state": "st",
        ]
    }

    /// Opens a request in a new browser: the sign-in step, its pending request and session.
    func open(cookie: String? = nil) async throws -> (PendingAuthorization, BrowserSession) {
        let answer = await flow.authorize(request, cookie: cookie)
        guard case .signIn(let pending, _, _, _) = answer.step, let session = answer.session else { throw TestSupportError("no sign-in page") }
        return (pending, session)
    }

    func signIn(
        _ pending: PendingAuthorization, _ session: BrowserSession, user: String = "alice", password: String = Self.password,
        address: String? = "192.0.2.1"
    ) async -> AuthorizationFlow.Answer {
        await flow.signIn(
            ["handle": pending.handle, "csrf_token": session.csrfToken, "username": user, "password": password], cookie: session.cookie,
            address: address)
    }

    func close() { folder.remove() }
}

func stepName(_ step: AuthorizationFlow.Step) -> String {
    switch step {
    case .signIn(_, _, _, let status): return "signIn \(status)"
    case .consent: return "consent"
    case .redirect(let location): return "redirect " + (URLComponents(string: location)?.queryItems?.first { $0.name == "error" }?.value ?? "code")
    case .errorPage(_, let status): return "errorPage \(status)"
    }
}

@Suite("Sign-in and consent flow (pure logic, stepped clock)")
struct AuthorizationFlowTests {
    @Test("Sessions: a new cookie at sign-in (the old one dies); idle 30 min and absolute 12 h lifetimes; a pending request lasts 10 min")
    func sessionLifetimes() async throws {
        let fixture = try FlowFixture()
        defer { fixture.close() }
        let (pending, anonymous) = try await fixture.open()
        let answer = await fixture.signIn(pending, anonymous)
        #expect(stepName(answer.step) == "consent")
        let signedIn = try #require(answer.session)
        #expect(signedIn.cookie != anonymous.cookie && signedIn.csrfToken != anonymous.csrfToken && signedIn.username == "alice")
        #expect(fixture.sessions.session(anonymous.cookie) == nil && fixture.sessions.session(signedIn.cookie) != nil)
        // Idle: 29 min keeps it, and each use renews it, up to the absolute limit.
        for _ in 0..<24 {
            fixture.clock.advance(29 * 60)
            #expect(fixture.sessions.session(signedIn.cookie) != nil)
        }
        fixture.clock.advance(29 * 60)  // 12 h 5 min after sign-in
        #expect(fixture.sessions.session(signedIn.cookie) == nil)
        let (late, session) = try await fixture.open()
        fixture.clock.advance(30 * 60)
        #expect(stepName(await fixture.signIn(late, session).step) == "errorPage 403")  // the session idled out
        let (stale, fresh) = try await fixture.open()
        fixture.clock.advance(10 * 60)
        #expect(fixture.sessions.session(fresh.cookie) != nil)
        #expect(stepName(await fixture.signIn(stale, fresh).step) == "errorPage 400")  // the request took too long
    }

    @Test("Bounds: 8 open requests per browser (the oldest goes) and a bounded session table that drops anonymous sessions first")
    func bounds() async throws {
        var policy = SessionPolicy()
        policy.maximumSessions = 40
        let fixture = try FlowFixture(policy: policy)
        defer { fixture.close() }
        let (first, session) = try await fixture.open()
        var handles = [first.handle]
        for _ in 0..<8 { handles.append(try await fixture.open(cookie: session.cookie).0.handle) }
        #expect(fixture.sessions.pending(handles[0], in: session) == nil && fixture.sessions.pending(handles[1], in: session) != nil)
        let signedIn = try #require(await fixture.signIn(fixture.sessions.pending(handles[8], in: session)!, session).session)
        for _ in 0..<200 { _ = try fixture.sessions.sessionOrNew(nil) }
        #expect(fixture.sessions.count <= 40 && fixture.sessions.session(signedIn.cookie)?.username == "alice")
    }

    @Test("Bounds: open requests across all browsers are capped; anonymous sessions are shed first, the signed-in one stays")
    func pendingBound() async throws {
        var policy = SessionPolicy()
        policy.maximumPendingTotal = 100
        let fixture = try FlowFixture(policy: policy)
        defer { fixture.close() }
        let (pending, session) = try await fixture.open()
        let signedIn = try #require(await fixture.signIn(pending, session).session)
        _ = await fixture.flow.authorize(fixture.request, cookie: signedIn.cookie)  // alice's consent page stays open
        var cookies: [String] = []
        for _ in 0..<300 {
            let (_, anonymous) = try await fixture.open()
            _ = try await fixture.open(cookie: anonymous.cookie)
            cookies.append(anonymous.cookie)
        }
        let open = cookies.compactMap { fixture.sessions.session($0) }.count
        #expect(open * 2 <= 100 && open > 0, "\(open) anonymous sessions with 2 open requests each")
        #expect(fixture.sessions.session(signedIn.cookie)?.username == "alice")
        #expect(fixture.sessions.session(cookies.last!) != nil)
    }

    @Test("RFC 6749 §10.10, issue 18 item 8: failures are counted per user from one address; the attacker waits, the user from elsewhere does not")
    func throttling() async throws {
        let fixture = try FlowFixture()
        defer { fixture.close() }
        let (pending, session) = try await fixture.open()
        for _ in 0..<6 {
            #expect(
                stepName(await fixture.signIn(pending, session, user: "bob", password: "guess-guess", address: "198.51.100.7").step) == "signIn 200")
        }
        #expect(
            stepName(await fixture.signIn(pending, session, user: "bob", password: "bob's long password", address: "198.51.100.7").step)
                == "signIn 429")
        // bob from elsewhere is not locked out by the guesser; alice behind the guesser's address is not either.
        #expect(
            stepName(await fixture.signIn(pending, session, user: "bob", password: "bob's long password", address: "203.0.113.9").step) == "consent")
        let (next, nextSession) = try await fixture.open()
        #expect(stepName(await fixture.signIn(next, nextSession, address: "198.51.100.7").step) == "consent")
        // The delay passes.
        fixture.clock.advance(2)
        let (again, fresh) = try await fixture.open()
        #expect(stepName(await fixture.signIn(again, fresh, user: "bob", password: "bob's long password", address: "198.51.100.7").step) == "consent")
    }

    @Test("prompt=none answers without a page: login_required, consent_required, or the code")
    func promptNone() async throws {
        let fixture = try FlowFixture()
        defer { fixture.close() }
        var none = fixture.request
        none["prompt"] = "none"
        #expect(stepName(await fixture.flow.authorize(none, cookie: nil).step) == "redirect login_required")
        let (pending, session) = try await fixture.open()
        let signedIn = try #require(await fixture.signIn(pending, session).session)
        #expect(stepName(await fixture.flow.authorize(none, cookie: signedIn.cookie).step) == "redirect consent_required")
        try ConsentStore(dataPath: fixture.folder.appending("data")).remember(username: "alice", clientID: "app", scope: ["read"], now: Date())
        #expect(stepName(await fixture.flow.authorize(none, cookie: signedIn.cookie).step) == "redirect code")
        none["scope"] = "read write"
        #expect(stepName(await fixture.flow.authorize(none, cookie: signedIn.cookie).step) == "redirect consent_required")
    }

    @Test("Remembered consent: scopes add up per user and client; a subset is covered; forgetting a user or a client drops theirs")
    func consentStore() async throws {
        let folder = try TemporaryDirectory("tessera-consent")
        defer { folder.remove() }
        let store = ConsentStore(dataPath: folder.path)
        try store.remember(username: "alice", clientID: "app", scope: ["read"], now: Date())
        try store.remember(username: "alice", clientID: "app", scope: ["write"], now: Date())
        try store.remember(username: "bob", clientID: "app", scope: ["read"], now: Date())
        #expect(try store.covers(username: "alice", clientID: "app", scope: ["read", "write"]))
        #expect(try !store.covers(username: "bob", clientID: "app", scope: ["read", "write"]))
        #expect(try !store.covers(username: "alice", clientID: "other", scope: []))
        #expect(try store.forget() == 0 && store.forget(username: "alice") == 1 && store.forget(clientID: "app") == 1)
        #expect(try store.consents().isEmpty)
        let attributes = try FileManager.default.attributesOfItem(atPath: folder.appending(ConsentStore.fileName))
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
    }

    @Test("RFC 8252 §7.3: a registered loopback IP URI matches with any port; nothing else is loosened")
    func loopbackRedirects() {
        let client = Client(
            id: "native", type: .public, secretDigest: nil, grants: [.authorizationCode], scopes: [], defaultScopes: [], audience: "api",
            redirectURIs: ["http://127.0.0.1/cb", "http://[::1]:8000/cb", "https://app.example/cb"], created: Date())
        for uri in ["http://127.0.0.1/cb", "http://127.0.0.1:1/cb", "http://127.0.0.1:65535/cb", "http://[::1]/cb", "http://[::1]:49152/cb"] {
            #expect(client.registeredRedirectURI(matching: uri) != nil, "\(uri)")
        }
        for uri in [
            "http://127.0.0.1:65536/cb", "http://127.0.0.1:/cb", "http://127.0.0.1:0080x/cb", "http://127.0.0.1:80/cb/", "http://127.0.0.1:80/CB",
            "http://127.0.0.1:80/cb?x", "http://127.0.0.1.nip.io/cb", "http://127.0.0.1@evil/cb", "http://localhost:80/cb",
            "https://127.0.0.1:80/cb", "http://127.0.0.1:80", "https://app.example:8443/cb", "http://[::1]:80/cb/",
        ] {
            #expect(client.registeredRedirectURI(matching: uri) == nil, "\(uri)")
        }
    }

    @Test("Users: Django pbkdf2_sha256 hashes (made by Python's hashlib) verify; weak or malformed imports are refused; old files still read")
    func importedHashes() async throws {
        let folder = try TemporaryDirectory("tessera-users")
        defer { folder.remove() }
        let users = UserStore(dataPath: folder.path)
        // python3: hashlib.pbkdf2_hmac('sha256', 'tr0ub4dor&3 hörse'.encode(), b'Qx8hVYt3sKLm2wAb', 260000), base64.
        let django = "pbkdf2_sha256$260000$Qx8hVYt3sKLm2wAb$LsRttY2d183ITdoMHUSyRdxDAHRJa+r+zjdqiQS/7ss="
        try users.add("carol", passwordHash: django, now: Date())
        let carol = try #require(try users.users().first { $0.username == "carol" })
        #expect(UserStore.verify("tr0ub4dor&3 hörse", for: carol) && !UserStore.verify("tr0ub4dor&3 horse", for: carol))
        for bad in [
            "pbkdf2_sha256$1000$salt$LsRttY2d183ITdoMHUSyRdxDAHRJa+r+zjdqiQS/7ss=",
            "pbkdf2_sha256$260000$$LsRttY2d183ITdoMHUSyRdxDAHRJa+r+zjdqiQS/7ss=",
            "pbkdf2_sha256$260000$salt$AAAA", "md5$x$y", "scrypt$9$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "",
        ] {
            expectError(RegistrationError.Code.invalidPasswordHash, "\(bad)") { try users.add("dave", passwordHash: bad, now: Date()) }
        }
        // The CLI imports the same way, reading the hash from standard input.
        let imported = try await runTessera(["users", "add", "erin", "--hash-stdin", "--data", folder.path], stdin: django + "\n")
        #expect(imported.status == 0)
        #expect(UserStore.verify("tr0ub4dor&3 hörse", for: try users.users().first { $0.username == "erin" }))
        // A users.json from before this change names the hash password_scrypt.
        try users.add("frank", password: "a long password", now: Date())
        let scrypt = try #require(try users.users().first { $0.username == "frank" }).password
        #expect(scrypt.hasPrefix("scrypt$15$8$1$"))
        let legacy = #"{"username":"old","password_scrypt":"\#(scrypt)","created":"2026-01-01T00:00:00Z"}"#
        let decoded = try KeyStore.decoder.decode(User.self, from: Data(legacy.utf8))
        #expect(decoded.password == scrypt)
    }

    @Test(
        "RFC 8252 §8.6, issue 18 item 16: a public client with a loopback or private-use redirect URI always gets the consent page; remembered consent counts for https"
    )
    func loopbackConsentIsNeverRemembered() async throws {
        let fixture = try FlowFixture()
        defer { fixture.close() }
        let (pending, session) = try await fixture.open()
        let signedIn = try #require(await fixture.signIn(pending, session).session)
        let store = ConsentStore(dataPath: fixture.folder.appending("data"))
        try store.remember(username: "alice", clientID: "app", scope: ["read"], now: Date())
        try store.remember(username: "alice", clientID: "native", scope: ["read"], now: Date())
        #expect(stepName(await fixture.flow.authorize(fixture.request, cookie: signedIn.cookie).step) == "redirect code")
        for uri in ["http://127.0.0.1:51000/cb", "com.example.native:/cb"] {
            var native = fixture.request
            native["client_id"] = "native"
            native["redirect_uri"] = uri
            #expect(stepName(await fixture.flow.authorize(native, cookie: signedIn.cookie).step) == "consent", "\(uri)")
            native["prompt"] = "none"
            #expect(stepName(await fixture.flow.authorize(native, cookie: signedIn.cookie).step) == "redirect consent_required", "\(uri)")
        }
    }
}
