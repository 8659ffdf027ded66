import Foundation
import TesseraTestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// What a new user does first, as the README says it: clone, `tessera serve` on defaults, a token from the
/// demo client, `tessera verify`. Run on a real clone under umask 022 (git then makes the tracked `keys/`
/// 0755), with the built executable and no flag at all, so the defaults are what is tested.
@Suite("A fresh clone: the README's first command", .serialized)
struct FreshCloneTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let issuer = "http://127.0.0.1:8080"

    @Test(
        "umask 022 clone: tessera serve starts on defaults (keys/ made private), the demo client's token verifies, a port in use is said plainly, a restart says how to get a secret"
    )
    func firstStart() async throws {
        guard FileManager.default.fileExists(atPath: Self.repository.appendingPathComponent(".git").path) else {
            Issue.record("\(Self.repository.path) is not a git checkout: this test clones it")
            return
        }
        let (folder, clone) = try TemporaryDirectory.holding("tessera", label: "tessera-clone")
        defer { folder.remove() }
        let cloned = try await runChild("/bin/sh", ["-c", #"umask 022 && git clone --quiet --no-hardlinks "$0" "$1""#, Self.repository.path, clone])
        try #require(cloned.status == 0, "git clone: \(cloned.err)")
        // The premise: git made the tracked key folder open to others, as on a newcomer's machine.
        #expect(try fileMode(clone + "/keys") == 0o755)

        let server = try DefaultServer(folder: clone, log: folder.appending("first.log"))
        defer { server.stop() }
        try await server.waitUntilListening()
        let output = try server.output()
        let secret = try #require(output.firstMatch(of: /client_secret: (tcs_[A-Za-z0-9_-]+)/)?.1, "no demo secret printed:\n\(output)")
        #expect(output.contains("made it private (chmod 700)"), "the tightening is said in the log")
        #expect(
            output.range(of: "tessera listening")!.lowerBound < output.range(of: "client_secret:")!.lowerBound,
            "the secret is printed once the port is bound")
        #expect(try fileMode(clone + "/keys") == 0o700 && fileMode(clone + "/data") == 0o700)
        let keyFiles = try FileManager.default.contentsOfDirectory(atPath: clone + "/keys").filter { $0.hasSuffix(".pem") }
        #expect(keyFiles.count == 2)  // ES256 for access tokens, RS256 for ID tokens
        for file in keyFiles { #expect(try fileMode(clone + "/keys/" + file) == 0o600) }
        // Nothing the server wrote is something git would commit (no private key, no data).
        let status = try await runChild("/bin/sh", ["-c", #"cd "$0" && git status --porcelain"#, clone])
        #expect(status.status == 0 && status.out.isEmpty, "git status: \(status.out)")

        let token = try await clientCredentialsToken(secret: String(secret))
        let verified = try await runTessera([
            "verify", "--jwks", Self.issuer + "/.well-known/jwks.json", "--issuer", Self.issuer, "--audience", "api", token,
        ])
        #expect(verified.status == 0, "\(verified.err)")
        let claims = try JSONSerialization.jsonObject(with: Data(verified.out.utf8)) as? [String: Any] ?? [:]
        #expect(claims["client_id"] as? String == "demo" && claims["sub"] as? String == "demo" && claims["scope"] as? String == "read")

        // A second server on the same port: a plain sentence, and nothing created, registered or announced.
        let elsewhere = folder.appending("elsewhere")
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: false)
        let second = try await runChild(
            "/bin/sh", ["-c", #"cd "$0" && exec "$1" serve"#, elsewhere, builtExecutable("tessera")],
            environment: DefaultServer.environment)
        #expect(second.status != 0)
        #expect(second.err.contains("port 8080 is in use on 127.0.0.1") && second.err.contains("try --port 8081"), "\(second.err)")
        #expect(!second.out.contains("client_secret") && !second.err.contains("listening"), "\(second.out)\(second.err)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: elsewhere).isEmpty, "a failed start leaves nothing behind")

        // A restart: the demo client exists, its secret cannot be shown again; the way to a new one is.
        server.stop()
        let restarted = try DefaultServer(folder: clone, log: folder.appending("second.log"))
        defer { restarted.stop() }
        try await restarted.waitUntilListening()
        let again = try restarted.output()
        #expect(!again.contains("client_secret:") && again.contains("tessera clients rotate-secret demo"), "\(again)")
        #expect(!again.contains("made it private"), "an existing key folder is left as it is")
        _ = try await clientCredentialsToken(secret: String(secret))
    }

    func clientCredentialsToken(secret: String) async throws -> String {
        var request = URLRequest(url: URL(string: Self.issuer + "/token")!)
        request.httpMethod = "POST"
        request.timeoutInterval = 10
        request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        request.setValue("Basic " + Data("demo:\(secret)".utf8).base64EncodedString(), forHTTPHeaderField: "Authorization")
        request.httpBody = Data("grant_type=client_credentials".utf8)
        let (body, response) = try await URLSession.shared.data(for: request)
        try #require((response as? HTTPURLResponse)?.statusCode == 200, "\(String(decoding: body, as: UTF8.self))")
        let json = try JSONSerialization.jsonObject(with: body) as? [String: Any] ?? [:]
        return try #require(json["access_token"] as? String)
    }
}

/// `tessera serve` with no flags, in `folder`, under umask 022; output (stdout and stderr) to `log`.
final class DefaultServer: @unchecked Sendable {
    /// The test process's environment without any TESSERA_ setting, so only the defaults apply.
    static let environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TESSERA_") }
    private let process: ChildProcess
    private let log: String

    init(folder: String, log: String) throws {
        self.log = log
        guard FileManager.default.createFile(atPath: log, contents: nil) else { throw TestSupportError("cannot create \(log)") }
        process = try ChildProcess(
            "/bin/sh", ["-c", #"umask 022 && cd "$0" && exec "$1" serve"#, folder, builtExecutable("tessera")], environment: Self.environment,
            output: .file(log))
    }

    func output() throws -> String { try String(contentsOfFile: log, encoding: .utf8) }

    /// Until the server logs that it listens and has said what it had to say of the demo client.
    func waitUntilListening() async throws {
        for _ in 0..<600 {
            let text = try output()
            if text.contains("tessera listening"), text.contains("client_secret:") || text.contains("rotate-secret") { return }
            guard process.isRunning else { throw TestSupportError("tessera serve exited: \(text)") }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestSupportError("tessera serve did not start within 30 s: \(try output())")
    }

    /// SIGKILL, then reaped.
    func stop() {
        process.kill(SIGKILL)
        process.wait()
    }
}
