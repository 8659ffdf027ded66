import Foundation
import TesseraIssuer
import TesseraJOSE
import TesseraPostgres
import TesseraTestSupport
import Testing

/// Three `tessera serve` processes on one PostgreSQL schema and one key folder, as behind a load balancer.
final class Cluster: @unchecked Sendable {
    let database: TestDatabase
    let keys: TemporaryDirectory
    let servers: [ServeProcess]
    let issuer: String
    /// The confidential client `web` (password, refresh_token, authorization_code; retry window 60 s) and its secret.
    let secret: String
    static let password = "correct horse battery"
    static let redirectURI = "https://app.example/cb"
    /// `address`: where the instances reach the database (a proxy in front of it, for outage tests).
    /// `issuer`: the issuer URL the instances share (a load balancer in front of them, started once they run);
    /// the first instance's own address when nil.
    init(
        retryWindow: Int = 0, instances: Int = 3, serveArguments: [String] = [], address: ((TestDatabase) -> String)? = nil,
        issuer: String? = nil
    ) async throws {
        database = try await PostgresTestServer.createDatabase()
        keys = try TemporaryDirectory("tessera-cluster-keys")
        let url = address?(database) ?? database.address
        let environment = ["TESSERA_DATABASE": database.address]
        let added = try await runTessera(
            [
                "clients", "add", "web", "--grant", "password", "--grant", "refresh_token", "--grant", "authorization_code", "--scope", "read",
                "--redirect-uri", Self.redirectURI, "--retry-window", String(retryWindow), "--json",
            ], environment: environment)
        guard added.status == 0, let object = try JSONSerialization.jsonObject(with: Data(added.out.utf8)) as? [String: String],
            let secret = object["client_secret"]
        else { throw TestSupportError("clients add --database failed: \(added.err)") }
        self.secret = secret
        let user = try await runTessera(["users", "add", "alice", "--password-stdin"], environment: environment, stdin: Self.password + "\n")
        guard user.status == 0 else { throw TestSupportError("users add --database failed: \(user.err)") }
        var servers: [ServeProcess] = []
        for _ in 0..<instances { servers.append(try ServeProcess(keys: keys.path)) }
        self.servers = servers
        self.issuer = issuer ?? servers[0].base
        // The first start makes the key ring; the others read it.
        // Four connections each: the suite's other PostgreSQL tests run beside them on a server with 100 slots.
        for server in servers {
            try await server.start(["--database", url, "--issuer", self.issuer, "--database-pool-size", "4"] + serveArguments)
        }
    }

    func stop() {
        for server in servers { server.stop() }
        keys.remove()
    }

    /// A form post with the client's Basic credentials, on a connection of its own (`loopbackHTTP`).
    func post(_ server: Int, _ path: String, _ form: [String: String]) async throws -> (status: Int, json: [String: Any]) {
        let reply = try await loopbackHTTP(
            port: servers[server].port, method: "POST", path: path,
            headers: [
                ("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", "Basic " + Data("web:\(secret)".utf8).base64EncodedString()),
            ], body: formEncode(form.map { ($0.key, $0.value) }))
        return (reply.status, (try? JSONSerialization.jsonObject(with: Data(reply.body.utf8))) as? [String: Any] ?? [:])
    }

    /// The value of an unlabelled gauge in `server`'s `/metrics`.
    func gauge(_ server: Int, _ name: String) async throws -> Double? {
        guard let port = Int(try servers[server].metricsURL.split(separator: ":").last?.split(separator: "/").first ?? "") else { return nil }
        let text = try await loopbackHTTP(port: port, path: "/metrics").body
        return text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    /// The status of a GET at `server`.
    func status(_ server: Int, _ path: String) async throws -> Int { try await loopbackHTTP(port: servers[server].port, path: path).status }

    /// A password grant at `server`: the first refresh token of a new family.
    func signIn(at server: Int) async throws -> String {
        let reply = try await post(server, "/token", ["grant_type": "password", "username": "alice", "password": Self.password])
        guard reply.status == 200, let token = reply.json["refresh_token"] as? String else { throw TestSupportError("password grant: \(reply)") }
        return token
    }

    func refresh(_ token: String, at server: Int) async throws -> (status: Int, json: [String: Any]) {
        try await post(server, "/token", ["grant_type": "refresh_token", "refresh_token": token])
    }

    /// `clients` clients refreshing in a loop, each round at the next instance, until cancelled; what
    /// each got an answer for is in `acknowledged`. Errors and refusals are retried with the same token.
    func load(clients: Int, into acknowledged: Acknowledged) -> Task<Void, any Error> {
        Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for client in 0..<clients {
                    group.addTask {
                        var round = 0
                        while !Task.isCancelled {
                            round += 1
                            guard let reply = try? await self.refresh(acknowledged[client], at: (client + round) % 3) else { continue }
                            if reply.status == 200, let next = reply.json["refresh_token"] as? String {
                                acknowledged[client] = next
                            } else {
                                try? await Task.sleep(for: .milliseconds(20))
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    /// Each client's last acknowledged token, presented once more at a live instance (`servers`).
    func expectAcknowledgedWork(_ acknowledged: Acknowledged, clients: Int, at servers: [Int]) async throws {
        for client in 0..<clients {
            let reply = try await refresh(acknowledged[client], at: servers[client % servers.count])
            #expect(reply.status == 200, "client \(client): \(reply.json)")
        }
    }
}

@Suite(
    "Several tessera serve on one PostgreSQL database", .serialized, .postgresCleanup,
    .enabled(if: PostgresTestServer.enabled, PostgresTestServer.skipReason))
struct MultiInstanceTests {
    @Test("A client alternates instances: token at A, refresh at B and C, introspection at A, revocation at B, introspection and refresh at C see it")
    func alternatingInstances() async throws {
        let cluster = try await Cluster()
        defer { cluster.stop() }
        var token = try await cluster.signIn(at: 0)
        for server in [1, 2, 0, 1] {
            let reply = try await cluster.refresh(token, at: server)
            #expect(reply.status == 200, "\(reply.json)")
            token = try #require(reply.json["refresh_token"] as? String)
        }
        #expect(try await cluster.post(0, "/introspect", ["token": token]).json["active"] as? Bool == true)
        #expect(try await cluster.post(1, "/revoke", ["token": token]).status == 200)
        #expect(try await cluster.post(2, "/introspect", ["token": token]).json["active"] as? Bool == false)
        let refused = try await cluster.refresh(token, at: 2)
        #expect(refused.status == 400 && refused.json["error"] as? String == "invalid_grant")
    }

    @Test("64 concurrent refreshes of one token spread over three instances: exactly one succeeds, the rest are reuse and revoke the family")
    func concurrentRefreshes() async throws {
        let cluster = try await Cluster()
        defer { cluster.stop() }
        let token = try await cluster.signIn(at: 0)
        let replies = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
            for index in 0..<64 {
                group.addTask {
                    let reply = try await cluster.refresh(token, at: index % 3)
                    return (reply.status, reply.json["refresh_token"] as? String ?? reply.json["error"] as? String)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let winners = replies.filter { $0.0 == 200 }
        #expect(winners.count == 1, "\(replies.map(\.0))")
        #expect(replies.filter { $0.0 == 400 && $0.1 == "invalid_grant" }.count == 63)
        // Reuse revoked the family: the winner's successor is dead too.
        if let successor = winners.first?.1 { #expect(try await cluster.refresh(successor, at: 1).status == 400) }
    }

    @Test("An authorization code: /authorize at A, sign-in posted to B, consent to C (one session), redeemed at B, refused at C")
    func codeAcrossInstances() async throws {
        let cluster = try await Cluster()
        defer { cluster.stop() }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Interop/code_across.py").path
        let bases = cluster.servers.map(\.base)
        let python = try await runChild(
            "/usr/bin/env", ["python3", script] + bases + ["web", cluster.secret, Cluster.redirectURI, "alice", Cluster.password])
        #expect(python.status == 0, "\(python.err.suffix(800))")
        let result = try JSONSerialization.jsonObject(with: Data(python.out.utf8)) as? [String: Any]
        #expect(result?["issuer"] as? String == cluster.issuer && result?["replay"] as? String == "invalid_grant")
    }

    @Test("Instance B killed with SIGKILL under refresh load: every client's last acknowledged token still works once at A or C")
    func killUnderLoad() async throws {
        // A retry window: a client whose rotation B committed but never answered presents its last token again.
        let cluster = try await Cluster(retryWindow: 60)
        defer { cluster.stop() }
        let clients = 12
        var tokens: [String] = []
        for index in 0..<clients { tokens.append(try await cluster.signIn(at: index % 3)) }
        let acknowledged = Acknowledged(tokens)
        let load = cluster.load(clients: clients, into: acknowledged)
        try await Task.sleep(for: .seconds(2))
        cluster.servers[1].stop()
        try await Task.sleep(for: .seconds(1))
        load.cancel()
        _ = await load.result
        try await cluster.expectAcknowledgedWork(acknowledged, clients: clients, at: [0, 2])
        #expect(acknowledged.rotations > clients * 5, "the load rotated \(acknowledged.rotations) times")
    }

    @Test(
        "The database going away under refresh load: 503 temporarily_unavailable within the deadline, readiness fails, then service resumes by itself and every acknowledged token still works"
    )
    func databaseOutage() async throws {
        let proxyPort = try unusedLoopbackPort()
        let target = try DatabaseURL(PostgresTestServer.adminAddress).port
        func startProxy() async throws -> ChildProcess { try await startTCPProxy(port: proxyPort, targets: [target]) }
        var proxy = try await startProxy()
        defer { proxy.kill() }
        let cluster = try await Cluster(retryWindow: 60) { database in
            database.address.replacingOccurrences(of: ":\(target)/", with: ":\(proxyPort)/")
        }
        defer { cluster.stop() }
        var token = try await cluster.signIn(at: 0)
        token = try #require(try await cluster.refresh(token, at: 1).json["refresh_token"] as? String)
        let clients = 6
        var tokens: [String] = []
        for index in 0..<clients { tokens.append(try await cluster.signIn(at: index % 3)) }
        let acknowledged = Acknowledged(tokens)
        let load = cluster.load(clients: clients, into: acknowledged)
        try await Task.sleep(for: .seconds(1))
        let beforeOutage = acknowledged.rotations
        #expect(try await cluster.gauge(0, "tessera_database_up") == 1)
        proxy.kill()
        proxy.wait()
        // Requests in flight or arriving now fail with 503, each within the operation deadline (10 s; the bound
        // checked leaves room for a loaded machine: it is about not hanging, not about speed).
        var statuses: [Int] = []
        let clock = ContinuousClock()
        for server in 0..<3 {
            let started = clock.now
            let reply = try await cluster.refresh(token, at: server)
            statuses.append(reply.status)
            #expect(reply.status == 503 && reply.json["error"] as? String == "temporarily_unavailable", "\(reply)")
            #expect(clock.now - started < .seconds(20))
        }
        try await Task.sleep(for: .seconds(3))
        #expect(try await cluster.gauge(1, "tessera_database_up") == 0)
        for server in 0..<3 {
            #expect(try await cluster.status(server, "/health/ready") == 503)
            let live = try await loopbackHTTP(port: cluster.servers[server].port, path: "/healthz")
            #expect(live.status == 200 && live.body.contains(#""store":"unavailable""#), "\(live.body)")
        }
        proxy = try await startProxy()
        // Back by itself: each instance answers again once its next look at the database succeeds.
        var recovered: [Bool] = []
        for server in 0..<3 {
            var ok = false
            for _ in 0..<160 where !ok {
                if try await cluster.servers[server].request("/health/ready").status == 200 {
                    ok = true
                } else {
                    try await Task.sleep(for: .milliseconds(250))
                }
            }
            recovered.append(ok)
        }
        #expect(recovered == [true, true, true])
        try await Task.sleep(for: .seconds(1))
        load.cancel()
        _ = await load.result
        #expect(
            beforeOutage > 0 && acknowledged.rotations > beforeOutage,
            "rotations: \(beforeOutage) before the outage, \(acknowledged.rotations) in all")
        // The token acknowledged before the outage still works (the failed attempts changed nothing), and so
        // does every load client's last one (a rotation committed whose answer was lost is retried inside the window).
        let after = try await cluster.refresh(token, at: 2)
        #expect(after.status == 200, "\(after.json)")
        try await cluster.expectAcknowledgedWork(acknowledged, clients: clients, at: [0, 1, 2])
    }
}

/// The last token each load client got an answer for.
final class Acknowledged: @unchecked Sendable {
    private let lock = NSLock()
    private var tokens: [String]
    private var count = 0
    init(_ tokens: [String]) { self.tokens = tokens }
    var rotations: Int { lock.withLock { count } }
    subscript(index: Int) -> String {
        get { lock.withLock { tokens[index] } }
        set {
            lock.withLock {
                tokens[index] = newValue
                count += 1
            }
        }
    }
}

/// `Interop/tcp_proxy.py` listening on `port`, forwarding each connection to the next of `targets`; returned
/// once it accepts connections.
func startTCPProxy(port: Int, targets: [Int]) async throws -> ChildProcess {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Interop/tcp_proxy.py").path
    let proxy = try ChildProcess("/usr/bin/env", ["python3", script, String(port)] + targets.map(String.init), output: .null)
    for _ in 0..<100 {
        if let fd = try? connectLoopback(port: port) {
            close(fd)
            return proxy
        }
        try await Task.sleep(for: .milliseconds(50))
    }
    proxy.kill()
    throw TestSupportError("the proxy did not listen")
}
