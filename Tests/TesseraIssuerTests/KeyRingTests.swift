import Foundation
import TesseraJOSE
import TesseraTestSupport
import TesseraVerifier
import Testing

@testable import TesseraIssuer

/// Runs `tessera` with the key folder and the CLI clock at `now` (Unix seconds).
func keys(_ arguments: [String], folder: String, now: Int) async throws -> (status: Int32, out: String, err: String) {
    let result = try await runTessera(arguments + ["--keys", folder], environment: ["TESSERA_NOW": String(now)])
    return (result.status, result.out.trimmingCharacters(in: .whitespacesAndNewlines), result.err)
}

/// Verifies an access token the way a resource server would, against a JWKS document, at `now`.
func verify(_ token: String, jwks: String, at now: Int) throws -> AccessToken {
    var configuration = AccessTokenVerifier.Configuration(issuer: "http://127.0.0.1:8080", audience: "api")
    configuration.clock = .fixed(Date(timeIntervalSince1970: TimeInterval(now)))
    configuration.leeway = 0
    let keys = try VerificationKeySet(jwks: try JWKSet(json: jwks))
    return try AccessTokenVerifier(configuration: configuration, keys: keys).verify(token, using: keys)
}

func kid(of token: String) throws -> String {
    let header = try JSONObject(parsing: try Base64URL.decode(String(token.split(separator: ".")[0])))
    guard case .string(let kid)? = header["kid"] else { throw TestSupportError("no kid") }
    return kid
}

@Suite("Key ring: rotation rules (pure)")
struct KeyRingRuleTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    @Test("A pending key activates only after the publish delay; the retired key stays for the token lifetime plus skew")
    func rotation() throws {
        var ring = KeyRing(policy: KeyRingPolicy(jwksMaxAge: 300, clockSkew: 60, maxTokenLifetime: 600))
        #expect(ring.policy.publishDelay == 360 && ring.policy.retention == 660)
        let first = try ring.add(kid: "k1", algorithm: .es256, file: "k1.pem", now: t0, activate: true)
        #expect(ring.rotate(.es256, now: t0) == .needsPendingKey)
        let second = try ring.add(kid: "k2", algorithm: .es256, file: "k2.pem", now: t0, activate: false)
        #expect(ring.published.map(\.kid) == ["k1", "k2"] && ring.active(.es256)?.kid == "k1")
        #expect(ring.rotate(.es256, now: t0 + 359) == .waiting(pending: second, allowedAt: t0 + 360))
        guard case .rotated(let active, let retired) = ring.rotate(.es256, now: t0 + 360) else {
            Issue.record("no rotation")
            return
        }
        #expect(active.kid == "k2" && active.activated == t0 + 360)
        #expect(retired?.kid == first.kid && retired?.state == .retiring && retired?.removeAfter == t0 + 360 + 660)
        #expect(ring.prune(now: t0 + 1_019).isEmpty)
        #expect(ring.prune(now: t0 + 1_020).map(\.kid) == ["k1"])
        #expect(ring.keys.map(\.kid) == ["k2"])
        // --if-older-than: not due while the active key is young.
        #expect(ring.rotate(.es256, now: t0 + 400, ifOlderThan: 86_400) == .notDue(active: ring.active(.es256)!, dueAt: t0 + 360 + 86_400))
    }

    @Test("Refused: activating over an active key, two actives, duplicate kids, unknown algorithms, file names outside the folder")
    func validation() throws {
        var ring = KeyRing()
        _ = try ring.add(kid: "k1", algorithm: .es256, file: "k1.pem", now: t0, activate: true)
        #expect(throws: KeyStoreError(.rotationNotAllowed, "")) {
            try ring.add(kid: "k2", algorithm: .es256, file: "k2.pem", now: t0, activate: true)
        }
        #expect(throws: KeyStoreError(.badManifest, "")) { try ring.add(kid: "k1", algorithm: .rs256, file: "x.pem", now: t0, activate: false) }
        _ = try ring.add(kid: "r1", algorithm: .rs256, file: "r1.pem", now: t0, activate: true)  // one active per algorithm
        for (change, code) in [
            (
                { (r: inout KeyRing) in
                    r.keys[1].state = .active
                    r.keys[1].alg = "ES256"
                }, KeyStoreError.Code.badManifest
            ),
            ({ (r: inout KeyRing) in r.keys[1].kid = "k1" }, .badManifest),
            ({ (r: inout KeyRing) in r.keys[1].alg = "none" }, .badManifest),
            ({ (r: inout KeyRing) in r.keys[1].file = "../../etc/passwd" }, .badManifest),
            ({ (r: inout KeyRing) in r.keys[1].file = ".lock" }, .badManifest),
            ({ (r: inout KeyRing) in r.version = 2 }, .badManifest),
        ] {
            var copy = ring
            change(&copy)
            #expect(throws: KeyStoreError(code, "")) { try copy.validate() }
        }
        #expect(throws: KeyStoreError(.unknownKid, "")) { _ = try ring.revoke("nope", now: t0) }
        let revoked = try ring.revoke("k1", now: t0)
        #expect(revoked.state == .revoked && !ring.published.contains { $0.kid == "k1" })
    }
}

@Suite("Key ring: files, CLI and reload", .serialized)
struct KeyStoreTests {
    let t0 = 1_800_000_000

    @Test(
        "THREATS B24: a whole cycle driven by the CLI: no key signs before it is published; every token verifies until it expires; a revoked kid stops at once"
    )
    func fullCycle() async throws {
        let (folder, dir) = try TemporaryDirectory.holding("keys", label: "tessera-keys")
        defer { folder.remove() }
        let first = try await keys(["keys", "generate", "--alg", "ES256", "--activate"], folder: dir, now: t0)
        #expect(first.status == 0)
        let k1 = first.out
        let mint = { (now: Int) in
            try await keys(
                ["token", "mint", "--sub", "alice", "--client-id", "app", "--scope", "read write", "--aud", "api", "--ttl", "600"], folder: dir,
                now: now)
        }
        let tokenA = try await mint(t0).out
        #expect(try kid(of: tokenA) == k1)

        // No pending key: rotate prepares one and says when it may sign.
        let prepare = try await keys(["keys", "rotate"], folder: dir, now: t0 + 10)
        #expect(prepare.status == 3 && prepare.err.contains("rotate at or after 2027-01-15T08:06:10Z"))
        let k2 = try #require(prepare.err.split(separator: "\n").first { $0.hasPrefix("generated pending key ") }.map { String($0.dropFirst(22)) })
        let jwksEarly = try await keys(["keys", "jwks"], folder: dir, now: t0 + 10).out
        #expect(jwksEarly.contains(k1) && jwksEarly.contains(k2))
        #expect(try kid(of: try await mint(t0 + 369).out) == k1)  // pending: published, not signing
        #expect(try await keys(["keys", "rotate"], folder: dir, now: t0 + 369).status == 3)

        let rotated = try await keys(["keys", "rotate"], folder: dir, now: t0 + 370)
        #expect(rotated.status == 0 && rotated.out.contains("active: \(k2)") && rotated.out.contains("retiring: \(k1)"))
        let tokenB = try await mint(t0 + 370).out
        #expect(try kid(of: tokenB) == k2)
        let jwks = try await keys(["keys", "jwks"], folder: dir, now: t0 + 370).out
        // The token minted before the rotation verifies until it expires; the new one too.
        #expect(try verify(tokenA, jwks: jwks, at: t0 + 599).subject == "alice")
        expectError(TokenVerificationError.Code.expired) { _ = try verify(tokenA, jwks: jwks, at: t0 + 600) }
        #expect(try verify(tokenB, jwks: jwks, at: t0 + 900).scopes == ["read", "write"])

        // k1 stays published for 600 + 60 s after it stopped signing.
        // Nothing to prune yet: it says when there will be.
        #expect(
            try await keys(["keys", "prune"], folder: dir, now: t0 + 370 + 659).out
                == "nothing to prune yet\n\(k1) (retiring) may be pruned from 2027-01-15T08:17:10Z, when every token it signed has expired")
        #expect(try await keys(["keys", "prune"], folder: dir, now: t0 + 370 + 660).out == "removed \(k1)")
        let afterPrune = try await keys(["keys", "jwks"], folder: dir, now: t0 + 1_100).out
        #expect(!afterPrune.contains(k1) && afterPrune.contains(k2))
        #expect(!FileManager.default.fileExists(atPath: dir + "/\(k1).pem"))

        #expect(try await keys(["keys", "prune"], folder: dir, now: t0 + 1_100).out == "nothing to prune: no key is retiring")
        let k3 = try await keys(["keys", "generate", "--alg", "ES256"], folder: dir, now: t0 + 1_100).out
        let revoke = try await keys(["keys", "revoke", k2], folder: dir, now: t0 + 1_100)
        #expect(revoke.status == 0 && revoke.err.contains("no ES256 key is active"))
        #expect(try await keys(["keys", "jwks"], folder: dir, now: t0 + 1_100).out.contains(k3))
        let afterRevoke = try await keys(["keys", "jwks"], folder: dir, now: t0 + 1_100).out
        do {
            _ = try verify(tokenB, jwks: afterRevoke, at: t0 + 900)
            Issue.record("a token of a revoked kid verified")
        } catch let error as TokenVerificationError {
            #expect(error.code == .unknownKey)
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/\(k2).pem"))
        let noKey = try await mint(t0 + 1_100)
        #expect(noKey.status == 1 && noKey.err.contains("no active key"))
        let list = try await keys(["keys", "list", "--json"], folder: dir, now: t0 + 1_100)
        #expect(list.out.contains("\"revoked\"") && list.out.contains(k2))
    }

    @Test("keys revoke takes a kid that begins with '-' (1 in 64 thumbprints) before or after --keys; several kids are revoked all or none")
    func revokeDashKids() async throws {
        let (folder, dir) = try TemporaryDirectory.holding("keys", label: "tessera-dashkid")
        defer { folder.remove() }
        let store = KeyStore(path: dir)
        let active = try store.generate(.es256, activate: true, now: Date(timeIntervalSince1970: TimeInterval(t0))).kid
        var dashed: [String] = []
        for _ in 0..<5_000 where dashed.count < 2 {
            let kid = try store.generate(.es256, activate: false, now: Date(timeIntervalSince1970: TimeInterval(t0))).kid
            if kid.hasPrefix("-") { dashed.append(kid) }
        }
        try #require(dashed.count == 2)
        // Before the fix, "-…h…" was read as short flags: the help was printed, exit 0, nothing revoked.
        let first = try await keys(["keys", "revoke", dashed[0]], folder: dir, now: t0)
        #expect(
            first.status == 0
                && first.out == "revoked \(dashed[0]): removed from the JWKS; tokens it signed stop verifying when verifiers refresh their keys",
            "\(first)")
        let second = try await runTessera(["keys", "revoke", "--keys", dir, dashed[1]], environment: ["TESSERA_NOW": String(t0)])
        #expect(second.status == 0 && second.out.hasPrefix("revoked \(dashed[1])"), "\(second)")
        var ring = try store.read()
        #expect(dashed.allSatisfy { kid in ring.entry(kid)?.state == .revoked })
        #expect(dashed.allSatisfy { !FileManager.default.fileExists(atPath: dir + "/\($0).pem") })
        // An unknown kid among several: nothing is revoked.
        let mixed = try await keys(["keys", "revoke", active, "no-such-kid"], folder: dir, now: t0)
        #expect(mixed.status == 1 && mixed.err.contains("no key with kid no-such-kid"), "\(mixed)")
        ring = try store.read()
        #expect(ring.entry(active)?.state == .active)
        #expect(try await keys(["keys", "revoke"], folder: dir, now: t0).status == 64)
    }

    @Test("--force skips the delay and says what it risks; --if-older-than is a no-op for a young key; --ttl is capped")
    func forceAndCron() async throws {
        let (folder, dir) = try TemporaryDirectory.holding("keys", label: "tessera-force")
        defer { folder.remove() }
        _ = try await keys(["keys", "generate", "--alg", "EdDSA", "--activate"], folder: dir, now: t0)
        let young = try await keys(["keys", "rotate", "--if-older-than", "30d"], folder: dir, now: t0 + 86_400)
        #expect(young.status == 0 && young.out.hasPrefix("not due"))
        let forced = try await keys(["keys", "rotate", "--force"], folder: dir, now: t0 + 86_400)
        #expect(forced.status == 0 && forced.err.contains("without the publish delay"))
        let cron = try await keys(["keys", "rotate", "--if-older-than", "30d"], folder: dir, now: t0 + 86_400 * 32)
        #expect(cron.status == 3)  // due: prepared a pending key, which waits for the publish delay
        #expect(
            try await keys(["token", "mint", "--sub", "s", "--client-id", "c", "--aud", "api", "--ttl", "601"], folder: dir, now: t0).status == 1)
        let second = try await keys(["keys", "generate", "--alg", "EdDSA", "--activate"], folder: dir, now: t0)
        #expect(second.status == 1 && second.err.contains("is already active"))
        let filesBefore = try FileManager.default.contentsOfDirectory(atPath: dir).count
        let hs = try await keys(["keys", "generate", "--alg", "HS256"], folder: dir, now: t0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).count == filesBefore + 1)
        #expect(hs.status == 0 && hs.err.contains("shared secret"))
        #expect(!(try await keys(["keys", "jwks"], folder: dir, now: t0).out.contains(hs.out)))
    }

    @Test(
        "Issue 18 items 4, 5: with two algorithms active the cron form rotates each when due (no --alg needed); TESSERA_NOW is announced with its risk"
    )
    func cronWithTwoAlgorithms() async throws {
        let (folder, dir) = try TemporaryDirectory.holding("keys", label: "tessera-two-algs")
        defer { folder.remove() }
        _ = try await keys(["keys", "generate", "--alg", "ES256", "--activate"], folder: dir, now: t0)
        let rs = try await keys(["keys", "generate", "--alg", "RS256", "--activate"], folder: dir, now: t0)
        #expect(rs.status == 0 && rs.err.contains("TESSERA_NOW is set") && rs.err.contains("ahead of the system clock"), "\(rs.err)")
        let young = try await keys(["keys", "rotate", "--if-older-than", "30d"], folder: dir, now: t0 + 86_400)
        #expect(young.status == 0 && young.out.contains("ES256 not due") && young.out.contains("RS256 not due"), "\(young)")
        let due = t0 + 86_400 * 32
        let prepared = try await keys(["keys", "rotate", "--if-older-than", "30d"], folder: dir, now: due)
        #expect(prepared.status == 3 && prepared.err.contains("ES256 generated pending key") && prepared.err.contains("RS256 generated pending key"))
        let rotated = try await keys(["keys", "rotate", "--if-older-than", "30d"], folder: dir, now: due + 360)
        #expect(rotated.status == 0 && rotated.out.contains("ES256 active: ") && rotated.out.contains("RS256 active: "), "\(rotated)")
        let ring = try KeyStore(path: dir).read()
        #expect(ring.activeKeys.count == 2 && ring.keys.filter { $0.state == .retiring }.count == 2)
        // One algorithm still works as before, output unprefixed.
        let one = try await keys(["keys", "rotate", "--alg", "ES256", "--if-older-than", "30d"], folder: dir, now: due + 400)
        #expect(one.status == 0 && one.out.hasPrefix("not due: "))
    }

    @Test("Every exported JWK verifies a CLI-minted token with PyJWT, for every asymmetric algorithm; no JWK carries a private member")
    func interopPyJWT() async throws {
        let (folder, script) = try TemporaryDirectory.holding("verify.py", label: "tessera-interop")
        defer { folder.remove() }
        try """
        import json, sys, jwt
        request = json.load(sys.stdin)
        keys = jwt.PyJWKSet.from_dict(request["jwks"])
        kid = jwt.get_unverified_header(request["token"])["kid"]
        key = next(k for k in keys.keys if k.key_id == kid)
        claims = jwt.decode(request["token"], key.key, algorithms=[request["alg"]], audience="api")
        print(json.dumps(claims))
        """.write(toFile: script, atomically: false, encoding: .utf8)
        let now = Int(Date().timeIntervalSince1970)  // PyJWT checks exp and iat against the real clock
        for algorithm in JWSAlgorithm.asymmetric {
            let dir = folder.appending("keys-\(algorithm.name)")
            #expect(try await keys(["keys", "generate", "--alg", algorithm.name, "--activate"], folder: dir, now: now).status == 0)
            _ = try await keys(["keys", "generate", "--alg", algorithm.name], folder: dir, now: now)
            let token = try await keys(["token", "mint", "--sub", "alice", "--client-id", "app", "--aud", "api"], folder: dir, now: now).out
            let jwks = try await keys(["keys", "jwks"], folder: dir, now: now).out
            let object = try JSONSerialization.jsonObject(with: Data(jwks.utf8)) as! [String: Any]
            let members = (object["keys"] as! [[String: Any]]).flatMap(\.keys)
            #expect(Set(members).isDisjoint(with: ["d", "p", "q", "dp", "dq", "qi", "k", "oth"]), "\(algorithm.name)")
            #expect((object["keys"] as! [Any]).count == 2)
            let request = try JSONSerialization.data(withJSONObject: ["jwks": object, "token": token, "alg": algorithm.name])
            let python = try await runChild("/usr/bin/env", ["python3", script], stdin: request)
            #expect(python.status == 0 && python.out.contains("\"sub\": \"alice\""), "\(algorithm.name): \(python.out) \(python.err)")
        }
    }
}

extension KeyStoreTests {
    @Test(
        "tessera keys policy shows the timings and what they make; a change is validated like any other, and a shorter one says what it does not change"
    )
    func policyCommand() async throws {
        let dir = try TemporaryDirectory("tessera-keys-policy")
        defer { dir.remove() }
        let t0 = 1_800_000_000
        #expect(try await keys(["keys", "generate", "--alg", "ES256", "--activate"], folder: dir.path, now: t0).status == 0)
        let shown = try await keys(["keys", "policy"], folder: dir.path, now: t0)
        #expect(shown.status == 0 && shown.out.contains("jwks_max_age 300 s, clock_skew 60 s, max_token_lifetime 600 s"), "\(shown.out)")
        #expect(shown.out.contains("publish delay 360 s") && shown.out.contains("retention 660 s"))
        let before = try String(contentsOfFile: dir.appending("keyring.json"), encoding: .utf8)
        let refused = try await keys(["keys", "policy", "--jwks-max-age", "5"], folder: dir.path, now: t0)
        #expect(refused.status != 0 && refused.err.contains("at least 10"), "\(refused.err)")
        #expect(try String(contentsOfFile: dir.appending("keyring.json"), encoding: .utf8) == before)
        let shorter = try await keys(["keys", "policy", "--jwks-max-age", "60", "--max-token-lifetime", "300"], folder: dir.path, now: t0)
        #expect(shorter.status == 0 && shorter.out.contains("publish delay 120 s"), "\(shorter.out)")
        #expect(shorter.err.contains("up to 300 s") && shorter.err.contains("may live 600 s"), "\(shorter.err)")
        #expect(try KeyStore(path: dir.path).read().policy == KeyRingPolicy(jwksMaxAge: 60, clockSkew: 60, maxTokenLifetime: 300))
    }
}
