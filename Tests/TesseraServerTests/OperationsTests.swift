import Foundation
import TesseraIssuer
import TesseraJOSE
import TesseraTestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

@Suite("Operations: metrics, health and readiness, JSON logs with request ids, graceful shutdown", .serialized)
struct OperationsTests {
    /// The samples of `/metrics` as prometheus_client (PyPI) parses them: `name{label=value,…}` → value.
    static func scrape(_ server: ServeProcess) async throws -> [String: Double] {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Interop/metrics_samples.py").path
        let python = try await runChild("/usr/bin/env", ["python3", script, try server.metricsURL])
        try #require(python.status == 0, "prometheus_client could not parse /metrics: \(python.err.suffix(800))")
        return try #require(try JSONSerialization.jsonObject(with: Data(python.out.utf8)) as? [String: Double])
    }

    /// Registers `svc` (client credentials) and `web` (password and refresh), and the user alice.
    static func prepare(_ server: ServeProcess) async throws -> (svc: String, web: String) {
        func secret(_ arguments: [String]) async throws -> String {
            let added = try await runTessera(["clients", "add"] + arguments + ["--json", "--data", server.data])
            return try #require((try JSONSerialization.jsonObject(with: Data(added.out.utf8)) as? [String: String])?["client_secret"])
        }
        let svc = try await secret(["svc", "--scope", "read"])
        let web = try await secret(["web", "--grant", "password", "--grant", "refresh_token", "--scope", "read"])
        #expect(
            try await runTessera(["users", "add", "alice", "--password-stdin", "--data", server.data], stdin: "correct horse battery\n").status == 0)
        return (svc, web)
    }

    @Test(
        "Metrics: after client credentials, a password sign-in, a refresh, a reuse, failed client authentications and a throttled request, each counter moved by exactly that much (prometheus_client parses the exposition)"
    )
    func metricsMoveExactly() async throws {
        let server = try ServeProcess()
        let (svc, web) = try await Self.prepare(server)
        try await server.start()
        defer { server.stop() }
        let before = try await Self.scrape(server)
        for _ in 0..<2 { #expect(try await server.request("/token", form: ["grant_type": "client_credentials"], basic: ("svc", svc)).status == 200) }
        let signIn = try await server.request(
            "/token", form: ["grant_type": "password", "username": "alice", "password": "correct horse battery"], basic: ("web", web))
        let first = try #require(signIn.json["refresh_token"] as? String)
        #expect(try await server.request("/token", form: ["grant_type": "refresh_token", "refresh_token": first], basic: ("web", web)).status == 200)
        let reuse = try await server.request("/token", form: ["grant_type": "refresh_token", "refresh_token": first], basic: ("web", web))
        #expect(reuse.status == 400 && reuse.json["error"] as? String == "invalid_grant")
        var failures = 0
        var throttled = false
        // Python's requests, not URLSession: Foundation on Linux can stall on a 401 that carries a Basic challenge.
        let post =
            "import requests, sys; print(requests.post(sys.argv[1], auth=('svc', 'tcs_wrong'), data={'grant_type': 'client_credentials'}, timeout=5).status_code)"
        for _ in 0..<20 where !throttled {
            let status = try await runChild("/usr/bin/env", ["python3", "-c", post, server.base + "/token"]).out.trimmingCharacters(
                in: .whitespacesAndNewlines)
            if status == "401" { failures += 1 } else { throttled = status == "429" }
        }
        #expect(throttled && failures >= 5)
        let after = try await Self.scrape(server)
        func delta(_ key: String) -> Double { (after[key] ?? 0) - (before[key] ?? 0) }
        let expected: [String: Double] = [
            "tessera_tokens_issued_total{client_id=svc,grant_type=client_credentials}": 2,
            "tessera_tokens_issued_total{client_id=web,grant_type=password}": 1,
            "tessera_tokens_issued_total{client_id=web,grant_type=refresh_token}": 1,
            "tessera_refresh_rotations_total{}": 1,
            "tessera_refresh_reuse_detections_total{}": 1,
            "tessera_refresh_retries_total{}": 0,
            "tessera_token_errors_total{error=invalid_grant}": 1,
            "tessera_token_errors_total{error=invalid_client}": Double(failures),
            "tessera_client_authentication_failures_total{endpoint=token}": Double(failures),
            "tessera_throttled_requests_total{endpoint=token}": 1,
            // Hummingbird's MetricsMiddleware, through swift-metrics: the four successful token requests.
            "http_server_request_duration_count{http_request_method=POST,http_response_status_code=200,http_route=/token}": 4,
        ]
        for (key, value) in expected { #expect(delta(key) == value, "\(key): \(delta(key))") }
        // Gauges of state: the reuse revoked the one family; two keys are active; the store committed.
        #expect(after["tessera_refresh_families{state=live}"] == 0 && after["tessera_refresh_families{state=revoked}"] == 1)
        #expect(after["tessera_signing_keys{state=active}"] == 2 && (after["tessera_signing_key_age_seconds{alg=ES256}"] ?? -1) >= 0)
        #expect(delta("tessera_store_commit_seconds_count{}") >= 3 && after["tessera_ready{}"] == 1)
        // Not on the main port.
        #expect(try await server.request("/metrics").status == 404)
    }

    @Test(
        "Readiness: 503 naming the check when the last active key an OpenID Connect client needs is revoked, and when the store refuses writes after a failed fsync (fault shim); 200 when fixed"
    )
    func readiness() async throws {
        let server = try ServeProcess()
        let (_, web) = try await Self.prepare(server)
        #expect(
            try await runTessera([
                "clients", "add", "rp", "--public", "--scope", "openid", "--redirect-uri", "https://rp.example/cb", "--data", server.data,
            ]).status == 0)
        try await server.start()
        func ready() async throws -> (Int, [String: Any]) { try await server.request("/health/ready") }
        #expect(try await ready().0 == 200)
        #expect(try await server.request("/health/live").status == 200)
        let ring = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: server.keys + "/keyring.json"))) as? [String: Any]
        let rs256 = try #require((ring?["keys"] as? [[String: Any]])?.first { $0["alg"] as? String == "RS256" }?["kid"] as? String)
        #expect(try await runTessera(["keys", "revoke", rs256, "--keys", server.keys]).status == 0)
        let (status, body) = try await ready()
        let keys = (body["checks"] as? [String: Any])?["signing_keys"] as? [String: Any]
        #expect(status == 503 && body["status"] as? String == "not_ready" && keys?["status"] as? String == "fail")
        #expect((keys?["detail"] as? String)?.contains("no active RS256 key for the ID tokens of 1 OpenID Connect client") == true, "\(body)")
        #expect(try await runTessera(["keys", "generate", "--alg", "RS256", "--activate", "--keys", server.keys]).status == 0)
        #expect(try await ready().0 == 200)
        server.stop()

        // The store: an fsync that fails (EIO) puts it in its refuse-everything state until restart.
        let shimFolder = try TemporaryDirectory("tessera-shim")
        defer { shimFolder.remove() }
        let shim = try await buildFaultShim(in: shimFolder)
        try await server.start(environment: ["LD_PRELOAD": shim, "TESSERA_FAIL_FDATASYNC_AT": "30"])
        var refused = false
        for _ in 0..<60 where !refused {
            let reply = try await server.request(
                "/token", form: ["grant_type": "password", "username": "alice", "password": "correct horse battery"], basic: ("web", web))
            refused = reply.status == 503
        }
        #expect(refused, "no store write failed")
        let (storeStatus, storeBody) = try await ready()
        let store = (storeBody["checks"] as? [String: Any])?["refresh_store"] as? [String: Any]
        #expect(
            storeStatus == 503 && store?["status"] as? String == "fail" && (store?["detail"] as? String)?.contains("fsync") == true, "\(storeBody)")
        server.stop()
        try await server.start()
        defer { server.stop() }
        #expect(try await ready().0 == 200)
    }

    @Test(
        "JSON logs: under 400 concurrent requests every line is one JSON object with RFC 3339 time; each response's X-Request-Id is the request_id of its line; no secret in them"
    )
    func jsonLogs() async throws {
        let server = try ServeProcess()
        let (svc, _) = try await Self.prepare(server)
        try await server.start(["--log-format", "json"])
        let ids = try await withThrowingTaskGroup(of: String?.self) { group in
            for index in 0..<400 {
                group.addTask {
                    var request = URLRequest(url: URL(string: server.base + (index % 2 == 0 ? "/health/live" : "/token"))!)
                    request.timeoutInterval = 20
                    if index % 2 == 1 {
                        request.httpMethod = "POST"
                        request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
                        request.setValue("Basic " + Data("svc:\(svc)".utf8).base64EncodedString(), forHTTPHeaderField: "Authorization")
                        request.httpBody = Data("grant_type=client_credentials".utf8)
                    }
                    let (_, response) = try await URLSession.shared.data(for: request)
                    return (response as? HTTPURLResponse)?.value(forHTTPHeaderField: "X-Request-Id")
                }
            }
            return try await group.reduce(into: [String]()) { if let id = $1 { $0.append(id) } }
        }
        #expect(try await server.terminate() == 0)
        #expect(ids.count == 400 && Set(ids).count == 400)
        let lines = try String(contentsOfFile: server.logPath, encoding: .utf8).split(separator: "\n")
        var requestIDs = Set<String>()
        for line in lines where line.hasPrefix("{") {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
            #expect(object["level"] is String && object["message"] is String && object["logger"] as? String == "tessera")
            #expect((object["time"] as? String)?.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil)
            if object["message"] as? String == "request", let id = object["request_id"] as? String { requestIDs.insert(id) }
        }
        // Only the demo-client banner (printed to standard output, not a log line) is not JSON.
        #expect(lines.filter { !$0.hasPrefix("{") }.allSatisfy { !$0.contains("level") })
        #expect(Set(ids).isSubset(of: requestIDs))
        let log = try String(contentsOfFile: server.logPath, encoding: .utf8)
        #expect(!log.contains(svc) && !log.contains(String(svc.dropFirst(4).prefix(20))))
    }

    @Test(
        "SIGTERM under load: the clients' acknowledged refreshes all survive, exit status 0, and the log says what was drained and that the store was flushed"
    )
    func gracefulShutdownUnderLoad() async throws {
        let server = try ServeProcess()
        let (_, web) = try await Self.prepare(server)
        try await server.start()
        let received = try await ChainBox(signingIn: 8, at: server, secret: web)
        let status = try await withThrowingTaskGroup(of: Int32?.self) { group in
            for index in 0..<8 {
                group.addTask {
                    await received.keepRefreshing(index, at: server, secret: web)
                    return nil
                }
            }
            for _ in 0..<2_000 where received.chains.map(\.count).reduce(0, +) <= 40 { try await Task.sleep(for: .milliseconds(10)) }
            group.addTask { try await server.terminate() }
            return try await group.reduce(into: Int32?.none) { if let status = $1 { $0 = status } }
        }
        #expect(status == 0, "exit status after SIGTERM")
        let log = try String(contentsOfFile: server.logPath, encoding: .utf8)
        #expect(log.contains("shutting down: no new connections") && log.contains("requests_in_flight="), "\(log.suffix(800))")
        #expect(log.contains("refresh-token store flushed and closed") && log.contains("tessera stopped"))
        #expect(log.contains("requests_drained=") && log.contains("requests_cut=0"), "\(log.suffix(400))")
        try await server.start()
        defer { server.stop() }
        for chain in received.chains {
            let last = try await server.request("/token", form: ["grant_type": "refresh_token", "refresh_token": chain.last!], basic: ("web", web))
            #expect(last.status == 200, "the last acknowledged refresh token of a client: \(last.json)")
        }
    }

    @Test("sd_notify: under Type=notify, READY=1 once it listens and STOPPING=1 at SIGTERM, on the socket NOTIFY_SOCKET names")
    func systemdNotify() async throws {
        let folder = try TemporaryDirectory("tessera-notify")
        defer { folder.remove() }
        let path = folder.appending("notify")
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in for (index, byte) in path.utf8.enumerated() { buffer[index] = byte } }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(bound == 0)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        func receive() async throws -> String {
            try await onOwnThread {
                var buffer = [UInt8](repeating: 0, count: 256)
                let count = recv(fd, &buffer, buffer.count, 0)
                return count > 0 ? String(decoding: buffer.prefix(count), as: UTF8.self) : ""
            }
        }
        let server = try ServeProcess()
        try await server.start(environment: ["NOTIFY_SOCKET": path])
        #expect(try await receive() == "READY=1")
        #expect(try await server.terminate() == 0)
        #expect(try await receive() == "STOPPING=1")
    }

    @Test("A second SIGTERM while a request is still in flight ends the process at once (status 1), without waiting for the shutdown timeout")
    func secondSignalExitsAtOnce() async throws {
        let server = try ServeProcess()
        try await server.start(["--shutdown-timeout", "60"])
        // A token request whose body never finishes arriving: in flight until the request timeout (30 s).
        let fd = try connectLoopback(port: server.port)
        defer { close(fd) }
        let head = Array(
            "POST /token HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant".utf8)
        _ = head.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        try await Task.sleep(for: .milliseconds(300))
        let process = try #require(server.process)
        process.kill(SIGTERM)
        try await Task.sleep(for: .seconds(1))
        #expect(process.isRunning, "the first signal waits for the request in flight")
        let started = ContinuousClock.now
        let status = try await server.terminate()
        #expect(status == 1 && ContinuousClock.now - started < .seconds(10))
        let log = try String(contentsOfFile: server.logPath, encoding: .utf8)
        #expect(log.contains("requests_in_flight=1") && log.contains("second signal: exiting at once"), "\(log.suffix(600))")
    }
}
