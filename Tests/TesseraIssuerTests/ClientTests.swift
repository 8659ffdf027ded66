import Foundation
import TesseraJOSE
import TesseraTestSupport
import Testing

@testable import TesseraIssuer

func basic(_ id: String, _ secret: String) -> String {
    let encode = { (value: String) in value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? value }
    return "Basic " + Data("\(encode(id)):\(encode(secret))".utf8).base64EncodedString()
}

@Suite("Clients: registry and client authentication")
struct ClientTests {
    let secret = "tcs_" + String(repeating: "s", count: 43)

    var registry: ClientRegistry {
        ClientRegistry(clients: [
            Client(
                id: "svc", type: .confidential, secretDigest: Client.digest(ofSecret: secret), grants: [.clientCredentials],
                scopes: ["read", "write"], defaultScopes: ["read"], audience: "api", created: Date()),
            Client(
                id: "app", type: .public, secretDigest: nil, grants: [.authorizationCode, .refreshToken], scopes: ["read"],
                defaultScopes: ["read"], audience: "api", redirectURIs: ["https://app.example/cb"], created: Date()),
            Client(
                id: "odd.id~x", type: .confidential, secretDigest: Client.digest(ofSecret: "p@ss word:+%"), grants: [.clientCredentials],
                scopes: [], defaultScopes: [], audience: "api", created: Date()),
        ])
    }

    func expectOAuthError(_ code: OAuthError.Code, log: String? = nil, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
        guard let error = expectError(code, sourceLocation: sourceLocation, body) else { return }
        if let log { #expect(error.logMessage.contains(log), "\(error.logMessage)", sourceLocation: sourceLocation) }
        if code == .invalidClient { #expect(error.description == "client authentication failed", sourceLocation: sourceLocation) }
        #expect(!error.description.contains(secret) && !error.logMessage.contains(secret), sourceLocation: sourceLocation)
    }

    @Test("RFC 6749 §2.3.1: client_secret_basic (form-urlencoded inside), client_secret_post, and none for public clients")
    func methods() throws {
        let authenticator = ClientAuthenticator(registry: registry)
        #expect(try authenticator.authenticate(authorization: basic("svc", secret), clientID: nil, clientSecret: nil).id == "svc")
        #expect(
            try authenticator.authenticate(authorization: "bAsIc " + basic("svc", secret).dropFirst(6), clientID: "svc", clientSecret: nil).id
                == "svc")
        #expect(try authenticator.authenticate(authorization: nil, clientID: "svc", clientSecret: secret).id == "svc")
        #expect(try authenticator.authenticate(authorization: nil, clientID: "app", clientSecret: nil).id == "app")
        #expect(try authenticator.authenticate(authorization: basic("odd.id~x", "p@ss word:+%"), clientID: nil, clientSecret: nil).id == "odd.id~x")
    }

    @Test("RFC 6749 §2.3: failures are invalid_client with one description; two methods at once is invalid_request")
    func failures() throws {
        let authenticator = ClientAuthenticator(registry: registry)
        expectOAuthError(.invalidClient, log: "wrong secret") {
            _ = try authenticator.authenticate(authorization: nil, clientID: "svc", clientSecret: secret + "x")
        }
        expectOAuthError(.invalidClient, log: "unknown client") {
            _ = try authenticator.authenticate(authorization: nil, clientID: "nobody", clientSecret: secret)
        }
        expectOAuthError(.invalidClient, log: "unknown client") {
            _ = try authenticator.authenticate(authorization: nil, clientID: "nobody", clientSecret: nil)
        }
        expectOAuthError(.invalidClient, log: "sent no secret") {
            _ = try authenticator.authenticate(authorization: nil, clientID: "svc", clientSecret: nil)
        }
        expectOAuthError(.invalidClient, log: "public client app sent a secret") {
            _ = try authenticator.authenticate(authorization: nil, clientID: "app", clientSecret: "x")
        }
        expectOAuthError(.invalidClient, log: "no client_id") {
            _ = try authenticator.authenticate(authorization: nil, clientID: nil, clientSecret: secret)
        }
        expectOAuthError(.invalidClient, log: "Basic") {
            _ = try authenticator.authenticate(authorization: "Bearer abc", clientID: nil, clientSecret: nil)
        }
        expectOAuthError(.invalidClient, log: "malformed") {
            _ = try authenticator.authenticate(authorization: "Basic !!!", clientID: nil, clientSecret: nil)
        }
        expectOAuthError(.invalidClient, log: "malformed") {
            _ = try authenticator.authenticate(
                authorization: "Basic " + Data("no-colon".utf8).base64EncodedString(), clientID: nil, clientSecret: nil)
        }
        expectOAuthError(.invalidClient, log: "malformed") {
            _ = try authenticator.authenticate(authorization: "Basic " + Data("svc:%zz".utf8).base64EncodedString(), clientID: nil, clientSecret: nil)
        }
        expectOAuthError(.invalidClient, log: "1 KiB") {
            _ = try authenticator.authenticate(authorization: nil, clientID: "svc", clientSecret: String(repeating: "a", count: 1_025))
        }
        expectOAuthError(.invalidRequest) {
            _ = try authenticator.authenticate(authorization: basic("svc", secret), clientID: nil, clientSecret: secret)
        }
        expectOAuthError(.invalidRequest) {
            _ = try authenticator.authenticate(authorization: basic("svc", secret), clientID: "app", clientSecret: nil)
        }
    }

    @Test("Registration rules: ids, public clients without secrets or client_credentials, scopes, redirect URIs (RFC 6749 §3.1.2), lifetimes")
    func validation() throws {
        let base = registry.clients[0]
        let cases: [(String, RegistrationError.Code, (inout Client) -> Void)] = [
            ("id with a colon", .invalidClientID, { $0.id = "a:b" }), ("empty id", .invalidClientID, { $0.id = "" }),
            ("no secret", .invalidSecret, { $0.secretDigest = nil }), ("short digest", .invalidSecret, { $0.secretDigest = "abc" }),
            ("public with secret", .invalidSecret, { $0.type = .public }),
            (
                "public client_credentials", .publicClientCredentials,
                {
                    $0.type = .public
                    $0.secretDigest = nil
                }
            ),
            ("unknown grant", .invalidGrants, { $0.grants = [GrantType("implicit")] }), ("no grant", .invalidGrants, { $0.grants = [] }),
            ("bad scope", .invalidScopes, { $0.scopes = ["a b"] }), ("default outside allowed", .invalidScopes, { $0.defaultScopes = ["admin"] }),
            ("empty audience", .invalidAudience, { $0.audience = "" }), ("lifetime", .invalidLifetime, { $0.accessTokenLifetime = 0 }),
            ("retry window", .invalidLifetime, { $0.refreshTokens.retryWindow = 61 }),
            ("fragment", .invalidRedirectURI, { $0.redirectURIs = ["https://a.example/cb#x"] }),
            ("relative", .invalidRedirectURI, { $0.redirectURIs = ["/cb"] }),
            ("code without redirect", .missingRedirectURI, { $0.grants = [.authorizationCode] }),
            // OpenID Connect: ID tokens only with an asymmetric algorithm; post-logout URIs under the redirect-URI rules.
            ("HS256 ID tokens", .invalidIDTokenAlgorithm, { $0.idTokenAlgorithm = "HS256" }),
            ("none ID tokens", .invalidIDTokenAlgorithm, { $0.idTokenAlgorithm = "none" }),
            ("post-logout fragment", .invalidRedirectURI, { $0.postLogoutRedirectURIs = ["https://a.example/bye#x"] }),
            ("post-logout plain http", .invalidRedirectURI, { $0.postLogoutRedirectURIs = ["http://a.example/bye"] }),
        ]
        for (label, code, change) in cases {
            var client = base
            change(&client)
            expectError(code, "\(label)") { try client.validate() }
        }
        var es256 = base
        es256.idTokenAlgorithm = "ES256"
        es256.postLogoutRedirectURIs = ["https://a.example/bye", "http://127.0.0.1/bye"]
        try es256.validate()
        #expect(es256.idTokenSigningAlgorithm == .es256 && base.idTokenSigningAlgorithm == .rs256)
        var duplicate = registry
        duplicate.clients.append(base)
        expectError(RegistrationError.Code.duplicateClientID) { try duplicate.validate() }
        var future = registry
        future.version = 2
        expectError(RegistrationError.Code.unsupportedVersion) { try future.validate() }
        try registry.validate()
    }

    @Test("tessera clients add / list / rotate-secret / remove: the secret is shown once, stored only as SHA-256, 0600")
    func cli() async throws {
        let (folder, data) = try TemporaryDirectory.holding("data", label: "tessera-clients")
        defer { folder.remove() }
        let added = try await runTessera([
            "clients", "add", "svc", "--scope", "read", "--scope", "write", "--default-scope", "read", "--json", "--data", data,
        ])
        #expect(added.status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(added.out.utf8)) as! [String: String]
        let secret = try #require(object["client_secret"])
        let secretBytes = try Base64URL.decode(String(secret.dropFirst(4)))
        #expect(object["client_id"] == "svc" && secret.hasPrefix("tcs_") && secretBytes.count == 32)
        #expect(try await runTessera(["clients", "add", "svc", "--data", data]).status == 1)
        #expect(try await runTessera(["clients", "add", "app", "--public", "--data", data]).err.contains("redirect URI"))
        let file = try String(contentsOfFile: data + "/clients.json", encoding: .utf8)
        #expect(!file.contains(secret) && !file.contains(String(secret.dropFirst(4).prefix(16))))
        #expect(try FileManager.default.attributesOfItem(atPath: data + "/clients.json")[.posixPermissions] as! Int == 0o600)

        var registry = try ClientStore(dataPath: data).read()
        #expect(
            try ClientAuthenticator(registry: registry).authenticate(authorization: basic("svc", secret), clientID: nil, clientSecret: nil)
                .defaultScopes == ["read"])
        let rotated = try await runTessera(["clients", "rotate-secret", "svc", "--json", "--data", data])
        let newSecret = try #require((try JSONSerialization.jsonObject(with: Data(rotated.out.utf8)) as! [String: String])["client_secret"])
        registry = try ClientStore(dataPath: data).read()
        expectOAuthError(.invalidClient) {
            _ = try ClientAuthenticator(registry: registry).authenticate(authorization: nil, clientID: "svc", clientSecret: secret)
        }
        #expect(try ClientAuthenticator(registry: registry).authenticate(authorization: nil, clientID: "svc", clientSecret: newSecret).id == "svc")
        let list = try await runTessera(["clients", "list", "--json", "--data", data])
        #expect(list.out.contains("\"client_id\" : \"svc\"") && !list.out.contains("sha256"))
        // The table: each column starts at the same place on every line, whatever the ids' lengths.
        #expect(
            try await runTessera(["clients", "add", "a-much-longer-client-id", "--scope", "read", "--audience", "notes-api", "--data", data]).status
                == 0)
        let table = try await runTessera(["clients", "list", "--data", data]).out.split(separator: "\n").map(String.init)
        #expect(table.count == 3 && table[0].hasPrefix("CLIENT_ID"), "\(table)")
        for column in ["TYPE", "GRANTS", "SCOPES", "AUDIENCE"] {
            let start = try #require(table[0].range(of: column)).lowerBound.utf16Offset(in: table[0])
            for row in table.dropFirst() {
                let index = row.index(row.startIndex, offsetBy: start)
                #expect(row[row.index(before: index)] == " " && row[index] != " ", "\(column) in \(row)")
            }
        }
        #expect(try await runTessera(["clients", "remove", "a-much-longer-client-id", "--data", data]).status == 0)
        #expect(try await runTessera(["clients", "remove", "svc", "--data", data]).out.contains("removed svc"))
        #expect(try ClientStore(dataPath: data).read().clients.isEmpty)
        #expect(try await runTessera(["clients", "remove", "svc", "--data", data]).status == 1)
    }

    @Test("A client_id or username that begins with '-' (both allowed) is an operand, never short flags: no silent help with exit 0")
    func dashOperands() async throws {
        let (folder, data) = try TemporaryDirectory.holding("data", label: "tessera-dash")
        defer { folder.remove() }
        // "-hank" parsed as flags holds -h: ArgumentParser printed the help and exited 0, doing nothing.
        let added = try await runTessera(["clients", "add", "-hank", "--scope", "read", "--json", "--data", data])
        #expect(added.status == 0 && added.out.contains("\"client_id\" : \"-hank\""), "\(added)")
        #expect(try await runTessera(["clients", "rotate-secret", "--data", data, "-hank"]).status == 0)
        #expect(try await runTessera(["users", "add", "-hilda", "--password-stdin", "--data", data], stdin: "correct horse battery\n").status == 0)
        // Adding her again: that she exists is the answer, whatever is wrong with the new password.
        let again = try await runTessera(["users", "add", "-hilda", "--password-stdin", "--data", data], stdin: "short\n")
        #expect(again.status == 1 && again.err.contains("user -hilda already exists") && !again.err.contains("8 to 1,024"), "\(again.err)")
        #expect(try UserStore(dataPath: data).users().map(\.username) == ["-hilda"])
        #expect(try await runTessera(["store", "revoke", "--data", data, "--subject", "-hilda"]).status == 0)
        #expect(try await runTessera(["store", "revoke", "--data", data, "--client", "-hank"]).status == 0)
        // A wrong command line with such a word is a usage error, not the help.
        for wrong in [["users", "remove", "-hilda", "extra"], ["users", "remove", "-hilda", "--dat", "x"], ["users", "remove"]] {
            let result = try await runTessera(wrong + ["--data", data])
            #expect(result.status == 64 && result.out.isEmpty && result.err.hasPrefix("Error: "), "\(wrong): \(result)")
        }
        #expect(try UserStore(dataPath: data).users().map(\.username) == ["-hilda"])
        #expect(try await runTessera(["users", "remove", "-hilda", "--data", data]).out == "removed -hilda\n")
        #expect(try await runTessera(["clients", "remove", "-hank", "--data", data]).out == "removed -hank\n")
        #expect(try ClientStore(dataPath: data).read().clients.isEmpty && UserStore(dataPath: data).users().isEmpty)
    }
}

@Suite("Failure throttle: memory bound")
struct FailureThrottleBoundTests {
    @Test(
        "Past maximumKeys the idle keys go, then the stalest, down to three quarters (not one scan per failure); a blocked key that keeps failing stays blocked"
    )
    func bound() {
        let clock = SteppedClock()
        var policy = FailureThrottle.Policy()
        policy.maximumKeys = 100
        policy.window = 1
        policy.baseDelay = 300
        let throttle = FailureThrottle(policy: policy, now: { clock.now.timeIntervalSince1970 })
        let attacker = FailureThrottle.client("attacked", address: "203.0.113.9")
        for _ in 0...policy.freeFailures { throttle.recordFailure(attacker) }
        var evictions = 0
        var previous = throttle.trackedKeys
        for round in 0..<1_000 {
            // One new key every 10.2 ms through a 1 s window: about 98 are live at any time, just under the
            // bound, so dropping only the idle ones would leave the set full and scan again at the next key.
            clock.advance(0.0102)
            throttle.recordFailure([FailureThrottle.user("flood-\(round)", address: nil)[0]])
            if round % 10 == 0 { throttle.recordFailure(attacker) }
            let tracked = throttle.trackedKeys
            #expect(tracked <= policy.maximumKeys)
            if tracked <= previous {  // a new key came in and the count did not grow: an eviction ran
                evictions += 1
                #expect(tracked <= policy.maximumKeys * 3 / 4, "round \(round): an eviction frees a quarter of the bound")
            }
            previous = tracked
        }
        #expect((30...45).contains(evictions), "\(evictions) evictions for 1,000 keys: about one per 25 new keys")
        #expect(throttle.retryAfter(attacker) != nil)
    }
}
