import Foundation
import TesseraJOSE
import TesseraTestSupport
import TesseraVerifier
import Testing

@testable import TesseraIssuer

/// Issue 18, item 13: identifiers compared for security match byte for byte, never by Unicode canonical
/// equivalence. U+212A KELVIN SIGN is canonically equivalent to "K", U+037E GREEK QUESTION MARK to ";":
/// Swift's `==` says such strings are equal.
@Suite("Identifiers compare byte for byte (issue 18, item 13)")
struct ExactComparisonTests {
    static let kelvin = "\u{212A}"
    static let greekQuestionMark = "\u{037E}"

    @Test("The premise: Swift's String == calls these equal")
    func premise() {
        #expect("K" == Self.kelvin && ";" == Self.greekQuestionMark)
        #expect(!"K".sameBytes(as: Self.kelvin))
    }

    @Test("A redirect URI that is only canonically equivalent to a registered one does not match (and never reaches Location)")
    func redirectURIs() {
        let client = Client(
            id: "web", type: .public, secretDigest: nil, grants: [.authorizationCode], scopes: ["read"], defaultScopes: ["read"],
            audience: "api", redirectURIs: ["https://app.example/cb?Kind=1;x", "http://127.0.0.1/native/K"], created: Date())
        #expect(client.registeredRedirectURI(matching: "https://app.example/cb?Kind=1;x") == "https://app.example/cb?Kind=1;x")
        #expect(client.registeredRedirectURI(matching: "https://app.example/cb?\(Self.kelvin)ind=1\(Self.greekQuestionMark)x") == nil)
        #expect(client.registeredRedirectURI(matching: "https://app.example/cb?Kind=1\(Self.greekQuestionMark)x") == nil)
        #expect(client.registeredRedirectURI(matching: "http://127.0.0.1:5000/native/\(Self.kelvin)") == nil)
        #expect(client.registeredRedirectURI(matching: "http://127.0.0.1:5000/native/K") == "http://127.0.0.1/native/K")
    }

    @Test("Client ids look up byte for byte")
    func clientIDs() {
        let registry = ClientRegistry(clients: [
            Client(
                id: "Kapp", type: .public, secretDigest: nil, grants: [.refreshToken], scopes: ["read"], defaultScopes: ["read"], audience: "api",
                created: Date())
        ])
        #expect(registry.client("Kapp") != nil)
        #expect(registry.client("\(Self.kelvin)app") == nil)
    }

    @Test("Users, consents and key ids look up byte for byte")
    func usersConsentsKids() throws {
        let folder = try TemporaryDirectory("tessera-exact")
        defer { folder.remove() }
        let data = folder.appending("data")
        let consents = ConsentStore(dataPath: data)
        try consents.remember(username: "Kim", clientID: "app", scope: ["read"], now: Date())
        #expect(try consents.covers(username: "Kim", clientID: "app", scope: ["read"]))
        #expect(try !consents.covers(username: "\(Self.kelvin)im", clientID: "app", scope: ["read"]))
        let ring = KeyRing(keys: [
            KeyRingEntry(
                kid: "Kid-1", alg: "ES256", state: .active, file: "Kid-1.pem", created: Date(), activated: nil, retiringSince: nil,
                removeAfter: nil, revoked: nil)
        ])
        #expect(ring.entry("Kid-1") != nil && ring.entry("\(Self.kelvin)id-1") == nil)
    }

    @Test("The verifier: a kid or an issuer that is only canonically equivalent is refused")
    func verifier() async throws {
        var key = try SigningKey.generate(.es256)
        while !(key.keyID ?? "").contains("K") { key = try SigningKey.generate(.es256) }
        var factory = TokenFactory(key: key)
        factory.issuer = "https://Kissuer.example"
        var configuration = factory.configuration()
        configuration.clock = .fixed(Date(timeIntervalSince1970: TimeInterval(factory.now)))
        let verifier = try AccessTokenVerifier(configuration: configuration, keys: VerificationKeySet([try key.verificationKey()]))
        _ = try await verifier.verify(try factory.token())
        let kid = key.keyID!.replacingOccurrences(of: "K", with: Self.kelvin)
        await expectError(TokenVerificationError.Code.unknownKey) {
            _ = try await verifier.verify(try factory.token(header: #"{"alg":"ES256","typ":"at+jwt","kid":"\#(kid)"}"#))
        }
        await expectError(TokenVerificationError.Code.invalidIssuer) {
            _ = try await verifier.verify(try factory.token { $0["iss"] = .string("https://\(Self.kelvin)issuer.example") })
        }
    }
}

@Suite("Redirect URIs at registration (issue 18, item 14)")
struct RedirectURIRegistrationTests {
    static func client(_ uri: String) -> Client {
        Client(
            id: "app", type: .public, secretDigest: nil, grants: [.authorizationCode], scopes: ["read"], defaultScopes: ["read"],
            audience: "api", redirectURIs: [uri], created: Date())
    }

    @Test("Hostile redirect URIs are refused: script and data schemes, no host, CR LF, spaces, userinfo, wildcards, plain http elsewhere")
    func hostile() {
        let refused = [
            "javascript:alert(1)", "JavaScript://x.example/%0aalert(1)", "data:text/html,<script>", "file:///etc/passwd",
            "vbscript:msgbox", "https:///cb", "https://", "https://app.example/cb\r\nSet-Cookie: x=1", "https://app.example/c b",
            "https://app.example/cb\u{0}", "https://user@app.example/cb", "https://user:pw@app.example/cb", "https://*.example/cb",
            "https://app.example/*", "http://app.example/cb", "http://127.0.0.1.evil.example/cb", "myapp:/cb", "/relative/cb",
            "https://app.example/cb#fragment", "https://app.example/\u{212A}", "https://app.example/\"onload", "",
        ]
        for uri in refused {
            #expect(throws: RegistrationError.self, "\(uri.debugDescription) was accepted") { try Self.client(uri).validate() }
        }
    }

    @Test("What RFC 6749 §3.1.2 and RFC 8252 allow is accepted")
    func allowed() throws {
        for uri in [
            "https://app.example/cb", "https://app.example:8443/cb?x=1", "http://127.0.0.1/cb", "http://[::1]:8080/cb", "http://localhost:3000/cb",
            "com.example.app:/oauth2redirect", "com.example.app:/cb?x=%0A",
        ] {
            try Self.client(uri).validate()
        }
    }

    @Test("tessera clients add refuses a hostile URI with the reason, the URI escaped, and writes nothing")
    func cli() async throws {
        let folder = try TemporaryDirectory("tessera-redirect")
        defer { folder.remove() }
        let data = folder.appending("data")
        let result = try await runTessera([
            "clients", "add", "app", "--public", "--grant", "authorization_code", "--redirect-uri", "https://app.example/cb\r\nX: y", "--data", data,
        ])
        #expect(result.status != 0 && result.err.contains(#"\r\n"#) && result.err.contains("printable ASCII"), "\(result)")
        #expect(try !FileManager.default.fileExists(atPath: data + "/clients.json") || ClientStore(dataPath: data).read().clients.isEmpty)
    }
}

@Suite("Names: users add and clients add at once (issue 18, item 18)")
struct NameRaceTests {
    @Test("tessera users add X and tessera clients add X started together never both succeed (one lock over both files)")
    func race() async throws {
        let folder = try TemporaryDirectory("tessera-names")
        defer { folder.remove() }
        let data = folder.appending("data")
        var bothWon = 0
        var userWins = 0
        var clientWins = 0
        for round in 0..<24 {
            let name = "name\(round)"
            async let user = runTessera(["users", "add", name, "--password-stdin", "--data", data], stdin: "a long enough password\n")
            async let client = runTessera(["clients", "add", name, "--data", data])
            let (userResult, clientResult) = try await (user, client)
            if userResult.status == 0 && clientResult.status == 0 { bothWon += 1 }
            if userResult.status == 0 { userWins += 1 }
            if clientResult.status == 0 { clientWins += 1 }
            #expect(userResult.status == 0 || clientResult.status == 0, "neither won round \(round): \(userResult.err) \(clientResult.err)")
        }
        #expect(bothWon == 0)
        let users = try UserStore(dataPath: data).users().map(\.username)
        let clients = try ClientStore(dataPath: data).read().clients.map(\.id)
        #expect(Set(users).isDisjoint(with: clients) && users.count == userWins && clients.count == clientWins)
    }
}

@Suite("Registration rules (issue 18, item 19)")
struct RegistrationRuleTests {
    @Test("Usernames: no quote, backslash, colon, angle bracket, bidi override, zero-width, control or space; ordinary names of any script pass")
    func usernames() {
        for bad in [
            "al\"ice", "al\\ice", "al:ice", "<alice>", "ali\u{202E}ecila", "al\u{200B}ice", "al\u{FEFF}ice", "al\u{2066}ice", "al ice", "al\u{A0}ice",
            "al\u{1}ice", "al\u{7F}ice", "al\u{E000}ice", "", String(repeating: "é", count: 128),
        ] {
            #expect(!UserStore.isValidUsername(bad), "\(bad.debugDescription) was accepted")
        }
        for good in ["alice", "alice.liddell@example.com", "Zoë", "山田太郎", "o'brien", "user_01-x"] {
            #expect(UserStore.isValidUsername(good), "\(good) was refused")
        }
    }

    @Test("A public client cannot be registered for the password grant")
    func publicPasswordClient() {
        let client = Client(
            id: "spa", type: .public, secretDigest: nil, grants: [.password, .refreshToken], scopes: ["read"], defaultScopes: ["read"],
            audience: "api", created: Date())
        #expect(throws: RegistrationError(.publicClientPassword, "")) { try client.validate() }
    }
}
