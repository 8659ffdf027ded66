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
        let folder = try TemporaryDirectory("tessera-keys")
        defer { folder.remove() }
        let dir = folder.appending("keys")
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
        let folder = try TemporaryDirectory("tessera-dashkid")
        defer { folder.remove() }
        let dir = folder.appending("keys")
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
        let folder = try TemporaryDirectory("tessera-force")
        defer { folder.remove() }
        let dir = folder.appending("keys")
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

    @Test("Every exported JWK verifies a CLI-minted token with PyJWT, for every asymmetric algorithm; no JWK carries a private member")
    func interopPyJWT() async throws {
        let folder = try TemporaryDirectory("tessera-interop")
        defer { folder.remove() }
        let script = folder.appending("verify.py")
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

@Suite("Key ring: concurrency, crashes, permissions, reload", .serialized)
struct KeyRingRobustnessTests {
    let t0 = 1_800_000_000

    @Test("Two processes running keys generate and keys rotate in a loop leave a manifest listing every generated key exactly once")
    func twoWriters() async throws {
        let folder = try TemporaryDirectory("tessera-writers")
        defer { folder.remove() }
        let dir = folder.appending("keys")
        #expect(try await keys(["keys", "generate", "--alg", "ES256", "--activate"], folder: dir, now: t0).status == 0)
        // Both loops at once, each command a child of /bin/sh, waited for off Swift concurrency's threads.
        func loop(_ command: String) async throws -> String {
            try await runChild(
                "/bin/sh",
                [
                    "-c", "for i in $(seq 1 20); do \"$0\" keys \(command) --keys \"$1\" 2>&1; done",
                    builtExecutable("tessera"), dir,
                ], environment: ["TESSERA_NOW": String(t0)]
            ).out
        }
        async let generating = loop("generate --alg ES256")
        async let rotating = loop("rotate --alg ES256 --force")
        let (generated, rotations) = try await (generating, rotating)
        var kids = generated.split(separator: "\n").filter { !$0.contains(" ") }.map(String.init)
        kids += rotations.split(separator: "\n").filter { $0.hasPrefix("generated pending key ") }.map { String($0.dropFirst(22)) }
        #expect(kids.count >= 20)
        let ring = try KeyStore(path: dir).read()
        #expect(ring.keys.count == kids.count + 1)
        #expect(Set(ring.keys.map(\.kid)).isSuperset(of: kids))
        #expect(ring.activeKeys.count == 1)
        #expect(rotations.split(separator: "\n").filter { $0.hasPrefix("active: ") }.count == 20)
    }

    @Test("THREATS C7: kill -9 at any point of a rotate leaves the old or the new state; key files parse; tokens minted before still verify")
    func killDuringRotate() async throws {
        let folder = try TemporaryDirectory("tessera-killrotate")
        defer { folder.remove() }
        let dir = folder.appending("keys")
        _ = try await keys(["keys", "generate", "--alg", "ES256", "--activate"], folder: dir, now: t0)
        var tokens: [String] = []
        var outcomes: [String: Int] = [:]
        for round in 0..<40 {
            let before = try KeyStore(path: dir).read()
            tokens.append(try await keys(["token", "mint", "--sub", "s", "--client-id", "c", "--aud", "api"], folder: dir, now: t0).out)
            try await onOwnThread { [t0] in
                let process = Process()
                process.executableURL = URL(fileURLWithPath: builtExecutable("tessera"))
                process.arguments = ["keys", "rotate", "--alg", "ES256", "--force", "--keys", dir]
                process.environment = ["TESSERA_NOW": String(t0)]
                process.standardOutput = Pipe()
                process.standardError = Pipe()
                try process.run()
                usleep(UInt32.random(in: 0...60_000))
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
            let after = try KeyStore(path: dir).read()  // parses, names no missing file
            let oldActive = before.activeKeys.map(\.kid)
            let newActive = after.activeKeys.map(\.kid)
            if newActive == oldActive {
                #expect(after.keys.map(\.kid) == before.keys.map(\.kid), "round \(round): changed without rotating")
                outcomes["old", default: 0] += 1
            } else {
                #expect(after.keys.count == before.keys.count + 1, "round \(round)")
                #expect(after.entry(oldActive[0])?.state == .retiring, "round \(round)")
                outcomes["new", default: 0] += 1
            }
            let store = KeyStore(path: dir)
            for entry in after.keys { _ = try store.signingKey(entry) }
            let jwks = try store.publishedJWKS(after).jsonString
            #expect(newActive.allSatisfy { jwks.contains($0) })
            for token in tokens { #expect(try verify(token, jwks: jwks, at: t0).subject == "s", "round \(round)") }
        }
        print("kill -9 during keys rotate: \(outcomes)")
        // Orphaned key files (written, then killed before the manifest) are cleaned by prune.
        _ = try await keys(["keys", "prune"], folder: dir, now: t0)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".pem") }
        #expect(files.count == (try KeyStore(path: dir).read()).keys.count)
    }

    @Test("THREATS C8: under umask 022 every key file (temporary ones too) is created 0600 and the folder 0700; a readable key is refused")
    func permissions() async throws {
        let folder = try TemporaryDirectory("tessera-keyperm")
        defer { folder.remove() }
        let dir = folder.appending("keys")
        let trace = folder.appending("trace.txt")
        let strace = try await runChild(
            "/bin/sh",
            [
                "-c",
                "umask 022; exec strace -f -o \"$0\" -e trace=openat,open,mkdir,mkdirat,chmod,fchmod,fchmodat \"$1\" keys generate --alg RS256 --activate --keys \"$2\"",
                trace, builtExecutable("tessera"), dir,
            ])
        #expect(strace.status == 0, "\(strace.err)")
        let creations = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n").filter {
            $0.contains("O_CREAT") && $0.contains(dir) == false && ($0.contains(".pem") || $0.contains(".json") || $0.contains(".lock"))
        }
        #expect(creations.count >= 3, "\(creations)")
        for line in creations { #expect(line.contains(", 0600)"), "\(line)") }
        #expect(!creations.contains { $0.contains("chmod") })
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) {
            #expect(try FileManager.default.attributesOfItem(atPath: dir + "/" + name)[.posixPermissions] as! Int == 0o600, "\(name)")
        }
        #expect(try FileManager.default.attributesOfItem(atPath: dir)[.posixPermissions] as! Int == 0o700)

        let key = try #require(try FileManager.default.contentsOfDirectory(atPath: dir).first { $0.hasSuffix(".pem") })
        chmod(dir + "/" + key, 0o640)
        let refused = try await keys(["token", "mint", "--sub", "s", "--client-id", "c", "--aud", "api"], folder: dir, now: t0)
        #expect(refused.status == 1 && refused.err.contains("chmod 600"))
        #expect(throws: KeyStoreError(.insecurePermissions, "")) { _ = try SigningKeyRing(store: KeyStore(path: dir), bootstrap: false) }
        chmod(dir + "/" + key, 0o600)
        chmod(dir, 0o750)
        #expect(throws: KeyStoreError(.insecurePermissions, "")) { _ = try KeyStore(path: dir).read() }
    }

    @Test(
        "A key folder open to others that holds no key yet (a fresh clone's keys/) is made 0700 at the first key, and said; one holding keys is never changed"
    )
    func tightenEmptyFolder() async throws {
        let folder = try TemporaryDirectory("tessera-keytighten")
        defer { folder.remove() }
        // The server's first start: the README stays, the folder becomes private, the event names the old mode.
        let dir = folder.appending("keys")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        #expect(FileManager.default.createFile(atPath: dir + "/README.md", contents: Data("# keys\n".utf8), attributes: [.posixPermissions: 0o644]))
        chmod(dir, 0o755)
        let events = EventBox()
        let ring = try SigningKeyRing(store: KeyStore(path: dir), bootstrap: true) { events.record($0) }
        #expect(ring.current.signer() != nil)
        #expect(events.all.first == .tightenedFolder(path: dir, formerMode: 0o755))
        #expect(try mode(dir) == 0o700 && mode(dir + "/README.md") == 0o644)
        // The CLI's first key does the same, and says so.
        let cli = folder.appending("cli")
        try FileManager.default.createDirectory(atPath: cli, withIntermediateDirectories: false)
        chmod(cli, 0o775)
        let generated = try await keys(["keys", "generate", "--alg", "ES256", "--activate"], folder: cli, now: t0)
        #expect(generated.status == 0 && generated.err.contains("made it private (chmod 700)"), "\(generated.err)")
        #expect(try mode(cli) == 0o700)
        // Holding key material (a manifest, a key file, or a temporary one a crash left): left alone, and refused.
        for leftover in ["keyring.json", "0XuIRtdRj0H-dU1xLDhMKB-XvNDnJpNGRdoz8vm4Viw.pem", "hs-x.jwk", "keyring.json.tmp"] {
            let held = folder.appending("held-" + leftover)
            try FileManager.default.createDirectory(atPath: held, withIntermediateDirectories: false)
            #expect(FileManager.default.createFile(atPath: held + "/" + leftover, contents: Data(), attributes: [.posixPermissions: 0o600]))
            chmod(held, 0o755)
            #expect(try KeyStore(path: held).tightenIfHoldingNoKeys() == nil)
            #expect(throws: KeyStoreError(.insecurePermissions, "")) { _ = try SigningKeyRing(store: KeyStore(path: held), bootstrap: true) }
            #expect(try mode(held) == 0o755, "\(leftover)")
        }
        // A symlink to an empty open folder is not followed; a missing folder and a private one are not touched.
        let target = folder.appending("target")
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: false)
        chmod(target, 0o755)
        try FileManager.default.createSymbolicLink(atPath: folder.appending("link"), withDestinationPath: target)
        #expect(try KeyStore(path: folder.appending("link")).tightenIfHoldingNoKeys() == nil && mode(target) == 0o755)
        #expect(try KeyStore(path: folder.appending("missing")).tightenIfHoldingNoKeys() == nil)
        #expect(try KeyStore(path: dir).tightenIfHoldingNoKeys() == nil)
    }

    func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int ?? -1) & 0o777
    }

    @Test("THREATS C9: symlinks planted at the temporary or target names, or as the manifest, are refused and nothing is written through them")
    func symlinks() async throws {
        let folder = try TemporaryDirectory("tessera-keylink")
        defer { folder.remove() }
        let dir = folder.appending("keys")
        let victim = folder.appending("victim")
        _ = try await keys(["keys", "generate", "--alg", "ES256", "--activate"], folder: dir, now: t0)
        #expect(FileManager.default.createFile(atPath: victim, contents: Data("precious".utf8)))
        try FileManager.default.createSymbolicLink(atPath: dir + "/keyring.json.tmp", withDestinationPath: victim)
        let viaTemporary = try await keys(["keys", "generate", "--alg", "ES256"], folder: dir, now: t0)
        #expect(viaTemporary.status == 1 && viaTemporary.err.contains("not a regular file"))
        try FileManager.default.removeItem(atPath: dir + "/keyring.json.tmp")
        // The manifest itself replaced by a symlink.
        try FileManager.default.moveItem(atPath: dir + "/keyring.json", toPath: folder.appending("real.json"))
        try FileManager.default.createSymbolicLink(atPath: dir + "/keyring.json", withDestinationPath: folder.appending("real.json"))
        #expect(throws: KeyStoreError(.insecurePermissions, "")) { _ = try KeyStore(path: dir).read() }
        #expect(try await keys(["keys", "generate", "--alg", "ES256"], folder: dir, now: t0).status == 1)
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious")
        // The key folder itself as a symlink.
        try FileManager.default.removeItem(atPath: dir + "/keyring.json")
        try FileManager.default.moveItem(atPath: folder.appending("real.json"), toPath: dir + "/keyring.json")
        try FileManager.default.createSymbolicLink(atPath: folder.appending("link"), withDestinationPath: dir)
        #expect(try await keys(["keys", "list"], folder: folder.appending("link"), now: t0).status == 1)
        #expect(try await keys(["keys", "list"], folder: dir, now: t0).status == 0)
    }

    @Test("A running server's key ring: bootstraps ES256, picks up CLI changes, ignores a bad manifest, and its ETag follows the JWKS (C13)")
    func reload() async throws {
        let folder = try TemporaryDirectory("tessera-reload")
        defer { folder.remove() }
        let dir = folder.appending("keys")
        let events = EventBox()
        let ring = try SigningKeyRing(store: KeyStore(path: dir), onEvent: events.record)
        guard case .bootstrapped(let first)? = events.all.first else {
            Issue.record("no bootstrap event")
            return
        }
        #expect(ring.current.signer()?.keyID == first && ring.current.signer()?.algorithm == .es256)
        #expect(ring.current.cacheControl == "public, max-age=300")
        #expect(ring.current.ring.policy.publishDelay > ring.current.ring.policy.jwksMaxAge)
        let etag = ring.current.etag
        #expect(ring.reloadIfChanged() == false)

        let pending = try await keys(["keys", "generate", "--alg", "ES256"], folder: dir, now: t0).out
        #expect(ring.reloadIfChanged())
        #expect(ring.current.jwks.keys.count == 2 && ring.current.etag != etag && ring.current.signer()?.keyID == first)
        let published = ring.current.etag
        _ = try await keys(["keys", "rotate", "--force"], folder: dir, now: t0)
        #expect(ring.reloadIfChanged())
        #expect(ring.current.signer()?.keyID == pending && ring.current.etag == published)  // same keys, same JWKS

        // A broken manifest: reported, and the last good key set stays in use.
        let manifest = dir + "/keyring.json"
        let good = try Data(contentsOf: URL(fileURLWithPath: manifest))
        try Data("{\"version\": 1, \"keys\": [".utf8).write(to: URL(fileURLWithPath: manifest))
        #expect(ring.reloadIfChanged() == false)
        #expect(ring.current.signer()?.keyID == pending)
        guard case .reloadFailed(let reason)? = events.all.last else {
            Issue.record("no failure event")
            return
        }
        #expect(reason.contains("does not parse"))
        // A manifest naming a missing key file: refused the same way.
        try good.write(to: URL(fileURLWithPath: manifest))
        try FileManager.default.removeItem(atPath: dir + "/\(pending).pem")
        #expect(ring.reload() == false)
        #expect(ring.current.signer()?.keyID == pending)
        let list = try await keys(["keys", "list"], folder: dir, now: t0)
        #expect(list.status == 1 && list.err.contains("\(pending).pem") && list.err.contains("is missing"))
    }
}

final class EventBox: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [SigningKeyRing.Event] = []
    var all: [SigningKeyRing.Event] { lock.withLock { events } }
    func record(_ event: SigningKeyRing.Event) { lock.withLock { events.append(event) } }
}
