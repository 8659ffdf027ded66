import Foundation
import TesseraJOSE
import TesseraTestSupport
import TesseraVerifier
import Testing

@testable import TesseraIssuer

@Suite("Key ring: concurrency, crashes, permissions, reload", .serialized)
struct KeyRingRobustnessTests {
    let t0 = 1_800_000_000

    @Test("Two processes running keys generate and keys rotate in a loop leave a manifest listing every generated key exactly once")
    func twoWriters() async throws {
        let (folder, dir) = try TemporaryDirectory.holding("keys", label: "tessera-writers")
        defer { folder.remove() }
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
        let (folder, dir) = try TemporaryDirectory.holding("keys", label: "tessera-killrotate")
        defer { folder.remove() }
        _ = try await keys(["keys", "generate", "--alg", "ES256", "--activate"], folder: dir, now: t0)
        var tokens: [String] = []
        var outcomes: [String: Int] = [:]
        for round in 0..<40 {
            let before = try KeyStore(path: dir).read()
            tokens.append(try await keys(["token", "mint", "--sub", "s", "--client-id", "c", "--aud", "api"], folder: dir, now: t0).out)
            try await onOwnThread { [t0] in
                let process = try ChildProcess(
                    builtExecutable("tessera"), ["keys", "rotate", "--alg", "ES256", "--force", "--keys", dir],
                    environment: ["TESSERA_NOW": String(t0)])
                usleep(UInt32.random(in: 0...60_000))
                process.kill(SIGKILL)
                process.wait()
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
        let (folder, dir) = try TemporaryDirectory.holding("keys", label: "tessera-keyperm")
        defer { folder.remove() }
        let (status, err, lines) = try await traceSystemCalls(
            "openat,open,mkdir,mkdirat,chmod,fchmod,fchmodat", of: builtExecutable("tessera"),
            ["keys", "generate", "--alg", "RS256", "--activate", "--keys", dir],
            in: folder)
        #expect(status == 0, "\(err)")
        let creations = lines.filter {
            $0.contains("O_CREAT") && $0.contains(dir) == false && ($0.contains(".pem") || $0.contains(".json") || $0.contains(".lock"))
        }
        #expect(creations.count >= 3, "\(creations)")
        for line in creations { #expect(line.contains(", 0600)"), "\(line)") }
        #expect(!creations.contains { $0.contains("chmod") })
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) {
            #expect(try fileMode(dir + "/" + name) == 0o600, "\(name)")
        }
        #expect(try fileMode(dir) == 0o700)

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
        #expect(try fileMode(dir) == 0o700 && fileMode(dir + "/README.md") == 0o644)
        // The CLI's first key does the same, and says so.
        let cli = folder.appending("cli")
        try FileManager.default.createDirectory(atPath: cli, withIntermediateDirectories: false)
        chmod(cli, 0o775)
        let generated = try await keys(["keys", "generate", "--alg", "ES256", "--activate"], folder: cli, now: t0)
        #expect(generated.status == 0 && generated.err.contains("made it private (chmod 700)"), "\(generated.err)")
        #expect(try fileMode(cli) == 0o700)
        // Holding key material (a manifest, a key file, or a temporary one a crash left): left alone, and refused.
        for leftover in ["keyring.json", "0XuIRtdRj0H-dU1xLDhMKB-XvNDnJpNGRdoz8vm4Viw.pem", "hs-x.jwk", "keyring.json.tmp"] {
            let held = folder.appending("held-" + leftover)
            try FileManager.default.createDirectory(atPath: held, withIntermediateDirectories: false)
            #expect(FileManager.default.createFile(atPath: held + "/" + leftover, contents: Data(), attributes: [.posixPermissions: 0o600]))
            chmod(held, 0o755)
            #expect(try KeyStore(path: held).tightenIfHoldingNoKeys() == nil)
            #expect(throws: KeyStoreError(.insecurePermissions, "")) { _ = try SigningKeyRing(store: KeyStore(path: held), bootstrap: true) }
            #expect(try fileMode(held) == 0o755, "\(leftover)")
        }
        // A symlink to an empty open folder is not followed; a missing folder and a private one are not touched.
        let target = folder.appending("target")
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: false)
        chmod(target, 0o755)
        try FileManager.default.createSymbolicLink(atPath: folder.appending("link"), withDestinationPath: target)
        #expect(try KeyStore(path: folder.appending("link")).tightenIfHoldingNoKeys() == nil && fileMode(target) == 0o755)
        #expect(try KeyStore(path: folder.appending("missing")).tightenIfHoldingNoKeys() == nil)
        #expect(try KeyStore(path: dir).tightenIfHoldingNoKeys() == nil)
    }

    @Test("THREATS C9: symlinks planted at the temporary or target names, or as the manifest, are refused and nothing is written through them")
    func symlinks() async throws {
        let (folder, dir) = try TemporaryDirectory.holding("keys", label: "tessera-keylink")
        defer { folder.remove() }
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
        let (folder, dir) = try TemporaryDirectory.holding("keys", label: "tessera-reload")
        defer { folder.remove() }
        let events = EventBox()
        let ring = try SigningKeyRing(store: KeyStore(path: dir), onEvent: events.record)
        guard case .bootstrapped(let first, _)? = events.all.first else {
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

@Suite("Key ring: withdrawing keys (issue 18, item 2)")
struct KeyWithdrawalTests {
    let t0 = 1_800_000_000

    @Test("A revoked key stops signing and publishing even when the rest of the new key set cannot be loaded; the last good keys stay otherwise")
    func revocationWinsOverALoadFailure() async throws {
        let (folder, dir) = try TemporaryDirectory.holding("keys", label: "tessera-withdraw")
        defer { folder.remove() }
        let ring = try SigningKeyRing(store: KeyStore(path: dir))
        let first = try #require(ring.current.signer()?.keyID)
        let pending = try await keys(["keys", "generate", "--alg", "ES256"], folder: dir, now: t0).out
        #expect(ring.current.jwks.keys.compactMap(\.keyID).sorted() == [first, pending].sorted())
        // Revoke the active key and break the pending one's file: the new state cannot be loaded whole.
        #expect(try await keys(["keys", "revoke", first], folder: dir, now: t0).status == 0)
        try FileManager.default.removeItem(atPath: dir + "/\(pending).pem")
        let now = ring.current
        #expect(now.signer() == nil)
        #expect(now.jwks.keys.compactMap(\.keyID) == [pending] && !now.jwksJSON.contains(first))
        #expect(now.verificationKeys?.keys.contains { $0.keyID == first } == false)
    }
}

extension KeyWithdrawalTests {
    @Test("Issue 18 item 3: the manifest refuses a jwks_max_age below the verifier's 10 s floor")
    func maxAgeFloor() throws {
        #expect(throws: KeyStoreError(.badManifest, "")) { try KeyRing(policy: KeyRingPolicy(jwksMaxAge: 9)).validate() }
        try KeyRing(policy: KeyRingPolicy(jwksMaxAge: 10)).validate()
    }
}
