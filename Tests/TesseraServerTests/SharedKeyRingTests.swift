import Foundation
import TesseraIssuer
import TesseraJOSE
import TesseraPostgres
import TesseraTestSupport
import Testing

/// What a resource server answered for each token a drill presented: the token's kid, the status, and when.
final class Verifications: @unchecked Sendable {
    struct Outcome {
        let kid: String
        let status: Int
        let at: ContinuousClock.Instant
    }

    private let lock = NSLock()
    private var outcomes: [Outcome] = []
    private var refusedMints: [String] = []

    func record(_ token: String, status: Int) {
        let outcome = Outcome(kid: Self.kid(of: token), status: status, at: .now)
        lock.withLock { outcomes.append(outcome) }
    }

    func refusedMint(_ reason: String) { lock.withLock { refusedMints.append(reason) } }

    var all: [Outcome] { lock.withLock { outcomes } }
    var mintsRefused: [String] { lock.withLock { refusedMints } }

    static func kid(of token: String) -> String {
        let header =
            try? JSONSerialization.jsonObject(with: Data(Base64URL.decode(String(token.split(separator: ".").first ?? "")))) as? [String: Any]
        return header?["kid"] as? String ?? "?"
    }
}

extension Cluster {
    /// The JWK Set `server` publishes: its kids, ETag and Cache-Control.
    func jwks(_ server: Int) async throws -> (kids: Set<String>, etag: String?, cacheControl: String?) {
        let reply = try await loopbackHTTP(port: servers[server].port, path: "/.well-known/jwks.json")
        let object = try JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any]
        return (
            Set((object?["keys"] as? [[String: Any]] ?? []).compactMap { $0["kid"] as? String }), reply.headers["etag"],
            reply.headers["cache-control"]
        )
    }

    /// Seconds until every instance's JWK Set satisfies `condition` with one ETag among them all; nil if that
    /// took longer than `seconds`.
    func agreed(within seconds: Double, _ condition: (Set<String>) -> Bool) async throws -> Double? {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < .milliseconds(Int(seconds * 1000)) {
            var sets: [(kids: Set<String>, etag: String?, cacheControl: String?)] = []
            for server in servers.indices { sets.append(try await jwks(server)) }
            if sets.allSatisfy({ condition($0.kids) }), Set(sets.map(\.etag)).count == 1, sets[0].etag != nil {
                let elapsed = ContinuousClock.now - start
                return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// A client-credentials token of `client` minted at `server`.
    func mint(at server: Int, client: (id: String, secret: String)) async throws -> (status: Int, token: String?) {
        let reply = try await loopbackHTTP(
            port: servers[server].port, method: "POST", path: "/token",
            headers: [
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Authorization", "Basic " + Data("\(client.id):\(client.secret)".utf8).base64EncodedString()),
            ], body: "grant_type=client_credentials&scope=notes%3Aread", timeout: 10)
        let object = (try? JSONSerialization.jsonObject(with: Data(reply.body.utf8))) as? [String: Any]
        return (reply.status, object?["access_token"] as? String)
    }

    /// Seconds until a token minted at every instance is signed by `kid`; nil if that took longer than `seconds`.
    func signing(with kid: String, within seconds: Double, client: (id: String, secret: String)) async throws -> Double? {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < .milliseconds(Int(seconds * 1000)) {
            var kids: [String] = []
            for server in servers.indices { kids.append(try await mint(at: server, client: client).token.map(Verifications.kid) ?? "") }
            if kids.allSatisfy({ $0 == kid }) {
                let elapsed = ContinuousClock.now - start
                return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }
}

extension MultiInstanceTests {
    @Test(
        "Issue 16: with a key-encryption key the key ring is the database's: instances with no shared folder publish one JWK Set with one ETag, verify each other's tokens, and drop a revoked key within seconds; a wrong key-encryption key stops a start"
    )
    func sharedKeyRing() async throws {
        let secrets = try TemporaryDirectory("tessera-cluster-kek")
        defer { secrets.remove() }
        let kekPath = secrets.appending("kek")
        let kek = try KeyEncryptionKey.create(at: kekPath)
        let cluster = try await Cluster(instances: 2, serveArguments: ["--key-encryption-key-file", kekPath])
        defer { cluster.stop() }
        // Nothing private on disk: the instances' key folders stay empty.
        #expect((try? FileManager.default.contentsOfDirectory(atPath: cluster.keys.path))?.isEmpty ?? true)
        let (first, second) = (try await cluster.jwks(0), try await cluster.jwks(1))
        #expect(first.kids.count == 2 && first.kids == second.kids)
        #expect(first.etag != nil && first.etag == second.etag)
        // A token minted at A is active at B (B verifies it with the same keys).
        let token = try #require(
            try await cluster.post(0, "/token", ["grant_type": "password", "username": "alice", "password": Cluster.password]).json["access_token"]
                as? String)
        #expect(try await cluster.post(1, "/introspect", ["token": token]).json["active"] as? Bool == true)
        // Revoke the signing key in the database: both instances stop publishing and signing with it.
        let header = try JSONSerialization.jsonObject(with: Data(try Base64URL.decode(String(token.split(separator: ".")[0])))) as? [String: Any]
        let kid = try #require(header?["kid"] as? String)
        let pool = try cluster.database.open()
        _ = try await PostgresKeyRing(database: pool, kek: kek).update { ring, _ in _ = try ring.revoke(kid, now: Date()) }
        var gone = [false, false]
        for _ in 0..<40 where gone.contains(false) {
            for server in 0..<2 where !gone[server] { gone[server] = !(try await cluster.jwks(server).kids.contains(kid)) }
            if gone.contains(false) { try await Task.sleep(for: .milliseconds(250)) }
        }
        #expect(gone == [true, true], "the revoked key is published within 10 s by neither instance")
        for server in 0..<2 {
            let fresh = try await cluster.post(server, "/token", ["grant_type": "password", "username": "alice", "password": Cluster.password])
            let signed = fresh.json["access_token"] as? String
            #expect(signed.map { !$0.hasPrefix(String(token.split(separator: ".")[0])) } ?? true, "still signing with the revoked key")
        }
        // A start with another key-encryption key is refused, naming it.
        let stranger = secrets.appending("other")
        try KeyEncryptionKey.create(at: stranger)
        let refused = try await runTessera([
            "serve", "--port", "0", "--metrics-address", "off", "--keys", secrets.appending("keys"), "--database", cluster.database.address,
            "--key-encryption-key-file", stranger,
        ])
        #expect(refused.status != 0 && refused.err.contains("key-encryption key"), "\(refused.err)")
    }
}

extension MultiInstanceTests {
    @Test(
        "Issue 16: a rotation driven only by the CLI while the example resource server (remote JWKS, through a load balancer) verifies tokens minted by alternating instances: none fails but a revoked key's, revocation reaches every instance within a second, one ETag throughout",
        arguments: [2, 3])
    func rotationDrill(instances: Int) async throws {
        let secrets = try TemporaryDirectory("tessera-drill")
        defer { secrets.remove() }
        let kek = secrets.appending("kek")
        try KeyEncryptionKey.create(at: kek)
        // The instances behind a round-robin load balancer whose address is the issuer.
        let balancerPort = try unusedLoopbackPort()
        let issuer = "http://127.0.0.1:\(balancerPort)"
        let cluster = try await Cluster(instances: instances, serveArguments: ["--key-encryption-key-file", kek], issuer: issuer)
        defer { cluster.stop() }
        let balancer = try await startTCPProxy(port: balancerPort, targets: cluster.servers.map(\.port))
        defer { balancer.kill() }
        let environment = ["TESSERA_DATABASE": cluster.database.address, "TESSERA_KEY_ENCRYPTION_KEY_FILE": kek]
        func tessera(_ arguments: [String], at now: Date? = nil) async throws -> (status: Int32, out: String, err: String) {
            try await runTessera(
                arguments, environment: environment.merging(now.map { ["TESSERA_NOW": String(Int($0.timeIntervalSince1970))] } ?? [:]) { $1 })
        }
        // Timings short enough to wait out the publish delay for real: max-age 10 s + skew 2 s.
        let policy = try await tessera(["keys", "policy", "--jwks-max-age", "10", "--clock-skew", "2", "--max-token-lifetime", "30"])
        #expect(policy.status == 0 && policy.out.contains("publish delay 12 s"), "\(policy.out) \(policy.err)")
        let added = try await tessera([
            "clients", "add", "svc", "--grant", "client_credentials", "--scope", "notes:read", "--audience", "notes-api",
            "--access-token-lifetime", "30", "--json",
        ])
        let object = try JSONSerialization.jsonObject(with: Data(added.out.utf8)) as? [String: String]
        let client = (id: "svc", secret: try #require(object?["client_secret"], "\(added.err)"))
        let original = try await cluster.jwks(0).kids
        #expect(try await cluster.agreed(within: 5) { $0 == original } != nil)
        for server in cluster.servers.indices { #expect(try await cluster.jwks(server).cacheControl?.contains("max-age=10") == true) }
        // The example resource server, its keys from the issuer's metadata through the load balancer.
        let resourcePort = try unusedLoopbackPort()
        let resource = try ChildProcess(
            builtExecutable("ExampleResourceServer"), [],
            environment: ProcessInfo.processInfo.environment.merging(
                ["TESSERA_ISSUER": issuer, "TESSERA_AUDIENCE": "notes-api", "PORT": String(resourcePort)]) { $1 },
            output: .file(secrets.appending("resource-server.log")))
        defer { resource.kill() }
        var healthy = false
        for _ in 0..<200 where !healthy {
            healthy = (try? await loopbackHTTP(port: resourcePort, path: "/health", timeout: 2))?.status == 200
            if !healthy { try await Task.sleep(for: .milliseconds(50)) }
        }
        try #require(healthy, "the example resource server did not start")
        // Three callers, each minting at the next instance in turn and presenting the new token and its previous one.
        let verifications = Verifications()
        let load = Task {
            await withTaskGroup(of: Void.self) { group in
                for caller in 0..<3 {
                    group.addTask {
                        var (round, previous) = (caller, String?.none)
                        while !Task.isCancelled {
                            round += 1
                            guard let minted = try? await cluster.mint(at: round % instances, client: client) else { continue }
                            guard minted.status == 200, let token = minted.token else {
                                verifications.refusedMint("\(minted.status) at instance \(round % instances)")
                                continue
                            }
                            for presented in [token, previous].compactMap(\.self) {
                                let reply = try? await loopbackHTTP(
                                    port: resourcePort, path: "/notes", headers: [("Authorization", "Bearer \(presented)")], timeout: 10)
                                verifications.record(presented, status: reply?.status ?? 0)
                            }
                            previous = token
                        }
                    }
                }
            }
        }
        defer { load.cancel() }
        try await Task.sleep(for: .seconds(1))
        let first = Verifications.kid(of: try #require(try await cluster.mint(at: 0, client: client).token))
        #expect(original.contains(first))
        // 1. A pending key: every instance publishes it at once, one ETag; rotating before the publish delay is refused.
        let generated = try await tessera(["keys", "generate", "--alg", "ES256"])
        let second = generated.out.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(generated.status == 0 && !second.isEmpty, "\(generated.err)")
        #expect(try await cluster.agreed(within: 1) { $0.contains(second) } != nil, "the pending key reached every instance")
        let early = try await tessera(["keys", "rotate", "--alg", "ES256"])
        #expect(early.status == 3, "rotate before the publish delay: \(early.out) \(early.err)")
        // 2. The publish delay waited out for real, then the rotation: every instance signs with the new key.
        try await Task.sleep(for: .seconds(12.5))
        let rotated = try await tessera(["keys", "rotate", "--alg", "ES256"])
        #expect(rotated.status == 0, "\(rotated.out) \(rotated.err)")
        #expect(try await cluster.signing(with: second, within: 1, client: client) != nil)
        // 3. Another rotation as the key-folder drills make it: TESSERA_NOW moves the CLI past the delay.
        let drilled = try await tessera(["keys", "generate", "--alg", "ES256"])
        let third = drilled.out.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try await cluster.agreed(within: 1) { $0.contains(third) } != nil, "the pending key reached every instance")
        let ahead = try await tessera(["keys", "rotate", "--alg", "ES256"], at: Date().addingTimeInterval(13))
        #expect(ahead.status == 0 && ahead.err.contains("TESSERA_NOW is set"), "\(ahead.out) \(ahead.err)")
        #expect(try await cluster.signing(with: third, within: 1, client: client) != nil)
        try await Task.sleep(for: .seconds(1))
        // 4. Revocation of the retiring key: gone from every instance's JWK Set within the documented second.
        let revokedAt = ContinuousClock.now
        #expect(try await tessera(["keys", "revoke", second]).status == 0)
        let revocation = try await cluster.agreed(within: 5) { !$0.contains(second) }
        #expect(revocation.map { $0 < 1 } == true, "revocation reached every instance in \(revocation.map { "\($0) s" } ?? "more than 5 s")")
        // 5. Prune, at the end of the retention (32 s ahead): the first key leaves every JWK Set.
        let pruned = try await tessera(["keys", "prune"], at: Date().addingTimeInterval(33))
        #expect(pruned.status == 0 && pruned.out.contains("removed \(first)"), "\(pruned.out) \(pruned.err)")
        #expect(try await cluster.agreed(within: 1) { !$0.contains(first) && $0.contains(third) } != nil)
        try await Task.sleep(for: .seconds(1))
        load.cancel()
        await load.value
        // Every token of a key that was not revoked verified; so did the revoked key's until its revocation.
        let outcomes = verifications.all
        let failed = outcomes.filter { $0.status != 200 && !($0.kid == second && $0.at >= revokedAt) }
        #expect(failed.isEmpty, "\(failed.count) of \(outcomes.count) failed: \(failed.prefix(5).map { "\($0.kid): \($0.status)" })")
        #expect(verifications.mintsRefused.isEmpty, "\(verifications.mintsRefused.prefix(5))")
        for kid in [first, second, third] { #expect(outcomes.contains { $0.kid == kid && $0.status == 200 }, "no token of \(kid) verified") }
    }
}
