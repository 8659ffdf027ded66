import Foundation
import TesseraIssuer
import TesseraJOSE
import TesseraTestSupport
import Testing

@testable import TesseraServer

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A real `tessera serve` child process on a loopback port, over folders that survive restarts.
final class ServeProcess: @unchecked Sendable {
    let folder: TemporaryDirectory
    /// Below Linux's ephemeral range (32768–60999), where the tests' own client connections take their
    /// ports; chosen again if the first start finds it taken (restarts keep it: tokens name it in `iss`).
    private(set) var port: Int
    private var started = false
    private var portAttempts = 0
    private(set) var process: ChildProcess?
    var base: String { "http://127.0.0.1:\(port)" }
    /// `/metrics` listens on a port the kernel picks (a random one could be a client's ephemeral port): the
    /// log's "metrics listening" line names it.
    var metricsURL: String {
        get throws {
            let log = try String(contentsOfFile: logPath, encoding: .utf8)
            guard let line = log.split(separator: "\n").last(where: { $0.contains("metrics listening") }),
                let port = line.firstMatch(of: /127\.0\.0\.1:(\d+)/)?.1
            else { throw TestSupportError("no metrics listening line in the log") }
            return "http://127.0.0.1:\(port)/metrics"
        }
    }
    /// The key folder: its own, or one several instances share.
    var keys: String { sharedKeys ?? folder.appending("keys") }
    private let sharedKeys: String?
    var data: String { folder.appending("data") }
    var logPath: String { folder.appending("serve.log") }

    init(keys: String? = nil) throws {
        sharedKeys = keys
        folder = try TemporaryDirectory("tessera-live")
        port = Int.random(in: 10_000...32_000)
    }

    func start(_ extra: [String] = [], environment: [String: String] = [:]) async throws {
        process = try ChildProcess(
            builtExecutable("tessera"),
            ["serve", "--port", String(port), "--metrics-address", "127.0.0.1:0", "--keys", keys, "--data", data] + extra,
            environment: environment.isEmpty ? nil : ProcessInfo.processInfo.environment.merging(environment) { _, new in new },
            output: .file(logPath))
        // Up to 30 s: the first seconds of a full test run on 2 cores are crowded.
        for _ in 0..<600 {
            if (try? await request("/healthz"))?.status == 200 {
                started = true
                return
            }
            if let process, !process.isRunning, !started, portAttempts < 5,
                (try? String(contentsOfFile: logPath, encoding: .utf8))?.contains("is in use") == true
            {
                portAttempts += 1
                port = Int.random(in: 10_000...32_000)
                return try await start(extra, environment: environment)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        throw TestSupportError("tessera serve did not answer /healthz within 30 s; its log ends: \(log.suffix(600))")
    }

    /// SIGTERM (a graceful shutdown), and its exit status once it has exited.
    func terminate() async throws -> Int32 {
        guard let process else { return -1 }
        process.kill(SIGTERM)
        let status = try await onOwnThread { process.wait() }
        self.process = nil
        return status
    }

    /// SIGKILL, as a crash would; then reaped (waitpid of its own pid returns at once after SIGKILL).
    func stop() {
        guard let process else { return }
        process.kill(SIGKILL)
        process.wait()
        self.process = nil
    }

    /// One request on a connection of its own (`loopbackHTTP`: every wait bounded; URLSession on Linux once
    /// stalled a run for ten minutes after a server it was talking to was killed).
    func request(_ path: String, form: [String: String]? = nil, basic: (String, String)? = nil) async throws -> (status: Int, json: [String: Any]) {
        var headers: [(String, String)] = []
        if form != nil { headers.append(("Content-Type", "application/x-www-form-urlencoded")) }
        if let (id, secret) = basic { headers.append(("Authorization", "Basic " + Data("\(id):\(secret)".utf8).base64EncodedString())) }
        let reply = try await loopbackHTTP(
            port: port, method: form == nil ? "GET" : "POST", path: path, headers: headers,
            body: form.map { formEncode($0.map { ($0.key, $0.value) }) } ?? "", timeout: 5)
        return (reply.status, (try? JSONSerialization.jsonObject(with: Data(reply.body.utf8))) as? [String: Any] ?? [:])
    }

    /// Every file the server wrote: its log and what is under the data and key folders.
    func writtenFiles() -> [String] {
        var files = [logPath]
        for root in [data, keys] {
            guard let names = FileManager.default.enumerator(atPath: root) else { continue }
            for case let name as String in names where !FileManager.default.isDirectory(root + "/" + name) { files.append(root + "/" + name) }
        }
        return files
    }

    deinit {
        stop()
        folder.remove()
    }
}

@Suite("tessera serve as a process: interop and crashes", .serialized)
struct LiveServerTests {
    /// Registers a client for the password and refresh grants (retry window 60 s) and a user.
    func prepare(_ server: ServeProcess) async throws -> String {
        let added = try await runTessera([
            "clients", "add", "web", "--grant", "password", "--grant", "refresh_token", "--scope", "read",
            "--retry-window", "60", "--json", "--data", server.data,
        ])
        #expect(added.status == 0)
        let secret = (try JSONSerialization.jsonObject(with: Data(added.out.utf8)) as! [String: String])["client_secret"]!
        #expect(
            try await runTessera(["users", "add", "alice", "--password-stdin", "--data", server.data], stdin: "correct horse battery\n").status == 0)
        return secret
    }

    @Test("Interop: Authlib (PyPI) gets, refreshes and revokes tokens from tessera serve; joserfc verifies them with the published JWKS")
    func authlib() async throws {
        let server = try ServeProcess()
        let secret = try await prepare(server)
        try await server.start()
        defer { server.stop() }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Interop/authlib_client.py").path
        let python = try await runChild("/usr/bin/env", ["python3", script, server.base, "web", secret, "alice", "correct horse battery"])
        #expect(python.status == 0, "\(python.err.suffix(800))")
        let result = try JSONSerialization.jsonObject(with: Data(python.out.utf8)) as? [String: Any] ?? [:]
        let alice = try #require(try UserStore(dataPath: server.data).users().named("alice"))
        #expect(result["password_sub"] as? String == alice.subject && result["refreshed_sub"] as? String == alice.subject)
        #expect(result["rotated"] as? Bool == true && result["post_refresh_scope"] as? String == "read")
        #expect(result["replay_status"] as? Int == 400 && result["replay_error"] as? String == "invalid_grant")
        #expect(result["after_revoke_error"] as? String == "invalid_grant")
    }

    @Test(
        "Interop, OpenID Connect: Authlib's relying party signs in with code + PKCE + nonce, validates the ID token (and PyJWT does too), fetches UserInfo, refreshes; Authlib validates the discovery document"
    )
    func authlibOpenIDConnect() async throws {
        let server = try ServeProcess()
        let redirect = "http://127.0.0.1:9/cb"
        let added = try await runTessera([
            "clients", "add", "oidc-app", "--grant", "authorization_code", "--grant", "refresh_token", "--scope", "openid", "--scope", "profile",
            "--scope", "email", "--scope", "offline_access", "--redirect-uri", redirect, "--json", "--data", server.data,
        ])
        let secret = try #require((try JSONSerialization.jsonObject(with: Data(added.out.utf8)) as? [String: String])?["client_secret"])
        let user = try await runTessera(
            [
                "users", "add", "alice", "--password-stdin", "--claim", "email=alice@example.com", "--claim", "name=Alice Liddell", "--data",
                server.data,
            ],
            stdin: "correct horse battery\n")
        #expect(user.status == 0, "\(user)")
        try await server.start()
        defer { server.stop() }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Interop/oidc_rp.py").path
        let python = try await runChild(
            "/usr/bin/env", ["python3", script, server.base, "oidc-app", secret, redirect, "alice", "correct horse battery"])
        #expect(python.status == 0, "\(python.err.suffix(1_500))")
        let result = try JSONSerialization.jsonObject(with: Data(python.out.utf8)) as? [String: Any] ?? [:]
        let alice = try #require(try UserStore(dataPath: server.data).users().named("alice"))
        #expect(result["metadata_valid"] as? Bool == true && result["consent_words"] as? Bool == true && result["alg"] as? String == "RS256")
        #expect(result["authlib_sub"] as? String == alice.subject && result["pyjwt_sub"] as? String == alice.subject)
        let info = try #require(result["userinfo"] as? [String: Any])
        #expect(
            info["email"] as? String == "alice@example.com" && info["name"] as? String == "Alice Liddell"
                && info["preferred_username"] as? String == "alice")
        #expect(result["refresh_same"] as? Bool == true)
    }

    @Test(
        "Durability end to end: SIGKILL while 8 clients refresh; after restart every refresh token a client received works, rotated-away ones do not")
    func killWhileRefreshing() async throws {
        let server = try ServeProcess()
        let secret = try await prepare(server)
        try await server.start()
        let received = try await ChainBox(signingIn: 8, at: server, secret: secret)
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<8 {
                group.addTask { await received.keepRefreshing(index, at: server, secret: secret) }
            }
            // Kill once the clients are well under way (not after a fixed time: a cold, loaded CI machine may
            // not have answered anything yet), at a random moment within the following 300 ms.
            for _ in 0..<2_000 where received.chains.map(\.count).reduce(0, +) <= 40 {
                try? await Task.sleep(for: .milliseconds(10))
            }
            try? await Task.sleep(for: .milliseconds(Int.random(in: 0...300)))
            server.stop()
        }
        let final = received.chains
        #expect(final.map(\.count).reduce(0, +) > 16, "the clients refreshed before the kill")
        try await server.start()
        defer { server.stop() }
        for chain in final {
            // The last token the client received works (a rotation that became durable without its response
            // reaching the client is covered by the 60 s retry window: the same successor comes back).
            let last = try await server.request(
                "/token", form: ["grant_type": "refresh_token", "refresh_token": chain.last!], basic: ("web", secret))
            #expect(last.status == 200, "\(last.json)")
            let successor = try #require(last.json["refresh_token"] as? String)
            #expect(
                try await server.request("/token", form: ["grant_type": "refresh_token", "refresh_token": successor], basic: ("web", secret)).status
                    == 200)
            // Used once, superseded: the received token no longer works, nor any older one.
            for token in chain.reversed() {
                let old = try await server.request("/token", form: ["grant_type": "refresh_token", "refresh_token": token], basic: ("web", secret))
                #expect(old.status == 400 && old.json["error"] as? String == "invalid_grant")
            }
        }
    }
}

extension LiveServerTests {
    @Test(
        "THREATS B17: after a full flow with canary secrets, no secret, password or token appears in the server's log (text and JSON) or any file it wrote",
        arguments: ["text", "json"])
    func noSecretsInLogsOrFiles(format: String) async throws {
        let server = try ServeProcess()
        let secret = try await prepare(server)
        try await server.start(["--log-format", format])
        var canaries = [secret, "correct horse battery"]
        let signIn = try await server.request(
            "/token", form: ["grant_type": "password", "username": "alice", "password": "correct horse battery"], basic: ("web", secret))
        canaries += [signIn.json["access_token"] as! String, signIn.json["refresh_token"] as! String]
        let refreshed = try await server.request(
            "/token", form: ["grant_type": "refresh_token", "refresh_token": canaries[3]], basic: ("web", secret))
        canaries += [refreshed.json["access_token"] as! String, refreshed.json["refresh_token"] as! String]
        // A retry (window 60 s).
        _ = try await server.request("/token", form: ["grant_type": "refresh_token", "refresh_token": canaries[3]], basic: ("web", secret))
        _ = try await server.request(
            "/token", form: ["grant_type": "password", "username": "alice", "password": "wrong canary pw"], basic: ("web", secret))
        canaries.append("wrong canary pw")
        _ = try await server.request("/introspect", form: ["token": canaries[4]], basic: ("web", secret))
        _ = try await server.request("/revoke", form: ["token": canaries[5]], basic: ("web", secret))
        server.stop()
        let log = try String(contentsOfFile: server.logPath, encoding: .utf8)
        let path = format == "json" ? #""path":"/token""# : "path=/token"
        #expect(log.contains("wrong password or unknown user alice") && log.contains(path), "\(log.prefix(600))")
        for file in server.writtenFiles() {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
            for canary in canaries {
                #expect(bytes.range(of: Data(canary.utf8)) == nil, "\(canary.prefix(12))… found in \(file)")
                // Also the secret part of a token on its own.
                if canary.hasPrefix("tsr_") || canary.hasPrefix("tcs_") {
                    #expect(bytes.range(of: Data(canary.dropFirst(4).prefix(24).utf8)) == nil, "part of \(canary.prefix(8))… in \(file)")
                }
            }
        }
    }
}

extension FileManager {
    func isDirectory(_ path: String) -> Bool {
        var directory: ObjCBool = false
        return fileExists(atPath: path, isDirectory: &directory) && directory.boolValue
    }
}

final class ChainBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [[String]]
    init(_ chains: [[String]]) { stored = chains }
    var chains: [[String]] { lock.withLock { stored } }
    func last(_ index: Int) -> String { lock.withLock { stored[index].last! } }
    func append(_ index: Int, _ token: String) { lock.withLock { stored[index].append(token) } }
}

extension ChainBox {
    /// `count` password sign-ins of alice at the client `web`: one chain each, starting with its refresh token.
    convenience init(signingIn count: Int, at server: ServeProcess, secret: String) async throws {
        var chains: [[String]] = []
        for _ in 0..<count {
            let signIn = try await server.request(
                "/token", form: ["grant_type": "password", "username": "alice", "password": "correct horse battery"], basic: ("web", secret))
            chains.append([try #require(signIn.json["refresh_token"] as? String)])
        }
        self.init(chains)
    }

    /// Chain `index` refreshes its newest token again and again, keeping each successor, until a refresh fails.
    func keepRefreshing(_ index: Int, at server: ServeProcess, secret: String) async {
        while true {
            guard
                let reply = try? await server.request(
                    "/token", form: ["grant_type": "refresh_token", "refresh_token": last(index)], basic: ("web", secret)),
                reply.status == 200, let next = reply.json["refresh_token"] as? String
            else { return }
            append(index, next)
        }
    }
}

extension LiveServerTests {
    @Test("Issue 18 item 15: CR, LF, NUL, ANSI escapes and bidi overrides in request values never reach the log raw; no line can be forged")
    func logInjection() async throws {
        let server = try ServeProcess()
        let secret = try await prepare(server)
        try await server.start()
        let hostile = "x\r\n2026-01-01T00:00:00+0000 critical tessera : FORGED\u{0}\u{1B}[31mred\u{202E}txt"
        _ = try await server.request("/token", form: ["grant_type": hostile], basic: ("web", secret))
        _ = try await server.request("/token", form: ["grant_type": "password", "username": hostile, "password": "wrong"], basic: ("web", secret))
        // A repeated parameter whose name holds a line feed (sent raw, percent-encoded in the body).
        _ = try await loopbackHTTP(
            port: server.port, method: "POST", path: "/token", headers: [("Content-Type", "application/x-www-form-urlencoded")],
            body: "a%0AFORGED%00=1&a%0AFORGED%00=2&grant_type=client_credentials", timeout: 5)
        server.stop()
        let log = try Data(contentsOf: URL(fileURLWithPath: server.logPath))
        for byte: UInt8 in [0x00, 0x1B, 0x0D] { #expect(!log.contains(byte), "raw byte \(byte) in the log") }
        let text = String(decoding: log, as: UTF8.self)
        #expect(!text.contains("\u{202E}"))
        let lines = text.split(separator: "\n")
        #expect(!lines.isEmpty && lines.allSatisfy { !$0.contains("FORGED") || !$0.hasPrefix("2026-01-01") })
        #expect(
            lines.allSatisfy { $0.first?.isNumber == true }, "a line that is not a log record: \(lines.first { $0.first?.isNumber != true } ?? "")")
        #expect(text.contains(#"\r\n2026-01-01"#) && text.contains(#"\u{1b}[31m"#), "\(text.suffix(800))")
    }
}

@Suite("Log escaping")
struct LogEscapingTests {
    @Test("escape writes control characters, separators and bidi controls as \\u{…}, doubles backslashes, leaves the rest")
    func escape() {
        #expect(EscapingLogHandler.escape("plain text é ✓") == "plain text é ✓")
        #expect(
            EscapingLogHandler.escape("a\nb\rc\td\u{0}e\u{1B}f\u{7F}g\u{85}h\u{2028}i\u{202E}j\\k")
                == #"a\nb\rc\td\u{0}e\u{1b}f\u{7f}g\u{85}h\u{2028}i\u{202e}j\\k"#)
        #expect(EscapingLogHandler.escape(#"\n"#) == #"\\n"#)  // a literal backslash-n cannot pass for an escaped line feed
        #expect(EscapingLogHandler.quoted("a b=c\"d") == #""a b=c\"d""#)
    }
}

extension LiveServerTests {
    @Test(
        "Issue 18 item 6: idle, slow-header and slow-body floods beyond the connection cap are closed at their timeouts; a legitimate client keeps being served"
    )
    func connectionFloods() async throws {
        let server = try ServeProcess()
        try await server.start(["--header-timeout", "1", "--request-timeout", "1", "--idle-timeout", "1", "--max-connections", "64"])
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Interop/connection_flood.py").path
        let run = try await runChild("/usr/bin/env", ["python3", script, String(server.port), "192", "6"])
        server.stop()
        let result = try JSONSerialization.jsonObject(with: Data(run.out.utf8)) as? [String: Any] ?? [:]
        #expect(run.status == 0, "\(run.err)")
        #expect((result["ok"] as? Int ?? 0) >= 10 && result["failures"] as? Int == 0, "\(result)")
        // Served within the attackers' timeouts plus a margin, never stuck behind them for good.
        #expect((result["max_latency"] as? Double ?? 99) < 4, "\(result)")
        // Every attacker was closed by the server within its timeout (1 s) plus a margin, not held open.
        #expect(result["attackers_closed"] as? Int == 192 && (result["longest_attacker"] as? Double ?? 99) < 4, "\(result)")
        let log = try String(contentsOfFile: server.logPath, encoding: .utf8)
        #expect(!log.contains("error"), "\(log.suffix(400))")
    }

    @Test(
        "Issue 18 item 19: RFC 9112 framing: two Host headers or none on HTTP/1.1 → 400; an unknown transfer coding → 501; HTTP/1.0 without Host is fine"
    )
    func requestFraming() async throws {
        let server = try ServeProcess()
        try await server.start()
        defer { server.stop() }
        func statusLine(_ raw: String) async throws -> String {
            try await onOwnThread {
                let fd = try connectLoopback(port: server.port, receiveTimeout: 5)
                defer { close(fd) }
                let bytes = Array(raw.utf8)
                _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
                var buffer = [UInt8](repeating: 0, count: 4_096)
                let count = recv(fd, &buffer, buffer.count, 0)
                return String(decoding: buffer[0..<max(0, count)], as: UTF8.self).components(separatedBy: "\r\n").first ?? ""
            }
        }
        #expect(try await statusLine("GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == "HTTP/1.1 400 Bad Request")
        #expect(try await statusLine("GET /healthz HTTP/1.1\r\n\r\n") == "HTTP/1.1 400 Bad Request")
        #expect(try await statusLine("GET /healthz HTTP/1.0\r\n\r\n") == "HTTP/1.1 200 OK")
        #expect(try await statusLine("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n") == "HTTP/1.1 200 OK")
        let form = "Content-Type: application/x-www-form-urlencoded\r\n"
        #expect(
            try await statusLine("POST /token HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\(form)\r\nabc") == "HTTP/1.1 501 Not Implemented")
        #expect(
            try await statusLine("POST /token HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\(form)\r\n0\r\n\r\n")
                == "HTTP/1.1 501 Not Implemented")
        #expect(
            try await statusLine("POST /token HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\(form)\r\n0\r\n\r\n")
                == "HTTP/1.1 400 Bad Request")  // chunked is understood: an empty form is invalid_request
    }
}
