import Foundation
import TesseraJOSE
import TesseraPostgres
import TesseraTestSupport
import Testing

@testable import TesseraIssuer

@Suite(
    "The key ring in PostgreSQL, private keys sealed (issue 16)", .postgresCleanup,
    .enabled(if: PostgresTestServer.enabled, PostgresTestServer.skipReason))
struct PostgresKeyRingTests {
    final class Fixture: @unchecked Sendable {
        let folder: TemporaryDirectory
        let database: TestDatabase
        let pool: PostgresDatabase
        let kek: KeyEncryptionKey
        let ring: PostgresKeyRing

        init() async throws {
            folder = try TemporaryDirectory("tessera-pg-keys")
            database = try await PostgresTestServer.createDatabase()
            pool = try database.open()
            kek = try KeyEncryptionKey.create(at: folder.appending("kek"))
            ring = PostgresKeyRing(database: pool, kek: kek)
        }

        deinit { folder.remove() }
    }

    @Test("Keys generated into the database sign, and verify with the published JWK Set; the ring keeps the folder's rules")
    func generateAndSign() async throws {
        let fixture = try await Fixture()
        let es256 = try await fixture.ring.generate(.es256, activate: true, now: Date())
        let rs256 = try await fixture.ring.generate(.rs256, activate: false, now: Date())
        let ring = try await fixture.ring.read()
        #expect(ring.active(.es256)?.kid == es256.kid && ring.entry(rs256.kid)?.state == .pending)
        let key = try await fixture.ring.signingKey(es256)
        let token = try JWSSigner(key: key).sign(payload: Array("hello".utf8))
        let jwks = try await fixture.ring.publishedJWKS(ring)
        #expect(Set(jwks.keys.compactMap(\.keyID)) == [es256.kid, rs256.kid])
        #expect(token.split(separator: ".").count == 3)
        // The folder's rules: a second active key of one algorithm is refused, and nothing is written.
        await #expect(throws: KeyStoreError.self) { _ = try await fixture.ring.generate(.es256, activate: true, now: Date()) }
        #expect(try await fixture.ring.read().keys.count == 2)
        #expect(try await fixture.pool.strings("SELECT count(*)::text FROM signing_keys") == ["2"])
    }

    @Test("Another key-encryption key is refused by name; a sealed key moved to another kid's row does not open")
    func wrongKeyAndMovedCiphertext() async throws {
        let fixture = try await Fixture()
        let one = try await fixture.ring.generate(.es256, activate: true, now: Date())
        let two = try await fixture.ring.generate(.es256, activate: false, now: Date())
        let stranger = PostgresKeyRing(database: fixture.pool, kek: try KeyEncryptionKey.create(at: fixture.folder.appending("other")))
        do {
            _ = try await stranger.signingKey(one)
            Issue.record("unsealed with another key-encryption key")
        } catch let error as KeyStoreError {
            #expect(error.code == .badKeyEncryptionKey && error.message.contains(fixture.kek.id) && error.message.contains(stranger.kek.id))
        }
        try await fixture.pool.execute(
            "UPDATE signing_keys SET sealed = (SELECT sealed FROM signing_keys WHERE kid = '\(two.kid)') WHERE kid = '\(one.kid)'")
        await #expect(throws: KeyStoreError.self) { _ = try await fixture.ring.signingKey(one) }
        #expect(try await fixture.ring.signingKey(two).keyID == two.kid)
    }

    @Test("pg_dump of the database holds the kids but no private key material in the clear")
    func dumpHoldsNoPrivateKey() async throws {
        let fixture = try await Fixture()
        let es256 = try await fixture.ring.generate(.es256, activate: true, now: Date())
        _ = try await fixture.ring.generate(.rs256, activate: true, now: Date())
        _ = try await fixture.ring.generate(.hs256, activate: true, now: Date())
        let url = try DatabaseURL(fixture.database.address)
        let dump = try await runChild(
            "/usr/bin/env", ["pg_dump", "-h", url.host, "-p", String(url.port), "-U", url.username, "-n", fixture.database.schema!, url.database],
            environment: ProcessInfo.processInfo.environment.merging(["PGPASSWORD": url.password ?? ""]) { $1 })
        #expect(dump.status == 0, "\(dump.err)")
        #expect(dump.out.contains(es256.kid))
        for secret in ["PRIVATE KEY", "\"d\":", "\"k\":", "\"p\":", "\"dp\":"] { #expect(!dump.out.contains(secret), "\(secret) in the dump") }
    }

    @Test("Rewrap moves every key to the new key-encryption key in one transaction; a failure part-way changes nothing")
    func rewrap() async throws {
        let fixture = try await Fixture()
        var entries: [KeyRingEntry] = []
        for algorithm in [JWSAlgorithm.es256, .rs256, .es384] {
            entries.append(try await fixture.ring.generate(algorithm, activate: true, now: Date()))
        }
        let newKEK = try KeyEncryptionKey.create(at: fixture.folder.appending("new"))
        // A row that does not open (changed by hand): the rewrap fails, and every key stays under the old key.
        try await fixture.pool.execute(
            "UPDATE signing_keys SET sealed = set_byte(sealed, 19, get_byte(sealed, 19) # 1) WHERE kid = '\(entries[2].kid)'")
        await #expect(throws: KeyStoreError.self) { try await fixture.ring.rewrap(to: newKEK) }
        #expect(try await fixture.pool.strings("SELECT DISTINCT kek_id FROM signing_keys") == [fixture.kek.id])
        #expect(try await fixture.ring.signingKey(entries[0]).keyID == entries[0].kid)
        // Without the damaged key, every key moves.
        let damaged = entries[2].kid
        _ = try await fixture.ring.update { ring, _ in _ = try ring.revoke(damaged, now: Date()) }
        #expect(try await fixture.ring.rewrap(to: newKEK) == 2)
        let moved = PostgresKeyRing(database: fixture.pool, kek: newKEK)
        for entry in entries.prefix(2) {
            #expect(try await moved.signingKey(entry).keyID == entry.kid)
            await #expect(throws: KeyStoreError.self) { _ = try await fixture.ring.signingKey(entry) }
        }
    }

    @Test("Nine generations at once from two pools (two instances), the ring's first among them: every key in the ring, every key sealed, none lost")
    func concurrentChanges() async throws {
        let fixture = try await Fixture()
        let second = PostgresKeyRing(database: try fixture.database.open(), kek: fixture.kek)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { _ = try await fixture.ring.generate(.es256, activate: true, now: Date()) }
            for index in 0..<8 {
                let ring = index % 2 == 0 ? fixture.ring : second
                group.addTask { _ = try await ring.generate(.es256, activate: false, now: Date()) }
            }
            try await group.waitForAll()
        }
        let ring = try await second.read()
        #expect(ring.keys.count == 9)
        for entry in ring.keys { #expect(try await fixture.ring.signingKey(entry).keyID == entry.kid) }
    }
}

extension PostgresKeyRingTests {
    @Test("tessera keys generate, rotate, jwks, prune and revoke on the database, the clock moved by TESSERA_NOW as the key-folder drills do")
    func commands() async throws {
        let fixture = try await Fixture()
        let base = ["--database", fixture.database.address, "--key-encryption-key-file", fixture.folder.appending("kek")]
        func keys(_ arguments: [String], at time: Date = Date()) async throws -> (status: Int32, out: String, err: String) {
            try await runTessera(["keys"] + arguments + base, environment: ["TESSERA_NOW": String(Int(time.timeIntervalSince1970))])
        }
        let start = Date()
        let first = try await keys(["generate", "--alg", "ES256", "--activate"], at: start)
        #expect(first.status == 0, "\(first.err)")
        let kid1 = first.out.trimmingCharacters(in: .whitespacesAndNewlines)
        // Due, but the new key must be published long enough first: exit 3.
        let waiting = try await keys(["rotate", "--alg", "ES256"], at: start)
        #expect(waiting.status == 3 && waiting.err.contains("generated pending key"), "\(waiting.err)")
        let policy = try await fixture.ring.read().policy
        let later = start + TimeInterval(policy.publishDelay + 10)
        let rotated = try await keys(["rotate", "--alg", "ES256"], at: later)
        #expect(rotated.status == 0 && rotated.out.contains("retiring: \(kid1)"), "\(rotated.out) \(rotated.err)")
        let jwks = try await keys(["jwks"], at: later)
        #expect(jwks.status == 0 && jwks.out.contains(kid1) && !jwks.out.contains("\"d\""), "\(jwks.err)")
        let pruned = try await keys(["prune"], at: later + TimeInterval(policy.retention + 10))
        #expect(pruned.status == 0 && pruned.out.contains("removed \(kid1)"), "\(pruned.out) \(pruned.err)")
        let listed = try await keys(["list", "--json"], at: later)
        #expect(!listed.out.contains(kid1) && listed.out.contains("\"active\""), "\(listed.out)")
        // What a running server loads: the key rotated in is the one that signs.
        let ring = try await fixture.ring.read()
        let active = try #require(ring.active(.es256))
        #expect(try await fixture.ring.signingKey(active).keyID == active.kid && active.kid != kid1)
        // Without the key-encryption key nothing is touched.
        let missing = try await runTessera(["keys", "list", "--database", fixture.database.address])
        #expect(missing.status != 0 && missing.err.contains("--key-encryption-key-file"), "\(missing.err)")
    }
}

extension PostgresKeyRingTests {
    @Test(
        "tessera db import --keys moves a key folder in with its kids, states and times; token mint and rewrap work on it; a second import is refused"
    )
    func importRewrapMint() async throws {
        let fixture = try await Fixture()
        let folder = KeyStore(path: fixture.folder.appending("keys"))
        let active = try folder.generate(.es256, activate: true, now: Date(timeIntervalSince1970: 1_800_000_000))
        let pending = try folder.generate(.rs256, activate: false, now: Date(timeIntervalSince1970: 1_800_000_100))
        let kekFile = fixture.folder.appending("kek")
        let imported = try await runTessera([
            "db", "import", "--keys", folder.path, "--database", fixture.database.address, "--key-encryption-key-file", kekFile,
        ])
        #expect(imported.status == 0 && imported.out.contains("2 keys sealed"), "\(imported.out) \(imported.err)")
        #expect(try await fixture.ring.read() == (try folder.read()))
        #expect(try await fixture.ring.signingKey(pending).keyID == pending.kid)
        let again = try await runTessera([
            "db", "import", "--keys", folder.path, "--database", fixture.database.address, "--key-encryption-key-file", kekFile,
        ])
        #expect(again.status != 0 && again.err.contains("already holds a key ring"), "\(again.err)")

        let mint = ["token", "mint", "--sub", "alice", "--client-id", "app", "--aud", "api", "--database", fixture.database.address]
        let minted = try await runTessera(mint + ["--key-encryption-key-file", kekFile])
        #expect(minted.status == 0 && minted.out.split(separator: ".").count == 3, "\(minted.err)")
        let header =
            try JSONSerialization.jsonObject(
                with: Data(try Base64URL.decode(String(minted.out.split(separator: ".")[0])))) as? [String: Any]
        #expect(header?["kid"] as? String == active.kid)

        let newFile = fixture.folder.appending("kek-2")
        #expect(try await runTessera(["keys", "new-kek", "--out", newFile]).status == 0)
        let rewrapped = try await runTessera([
            "keys", "rewrap", "--new-key-encryption-key-file", newFile, "--database", fixture.database.address, "--key-encryption-key-file", kekFile,
        ])
        #expect(rewrapped.status == 0 && rewrapped.out.contains("re-sealed 2 keys"), "\(rewrapped.err)")
        #expect(try await runTessera(mint + ["--key-encryption-key-file", newFile]).status == 0)
        let old = try await runTessera(mint + ["--key-encryption-key-file", kekFile])
        #expect(old.status != 0 && old.err.contains("key-encryption key"), "\(old.err)")
    }
}

extension PostgresKeyRingTests {
    @Test(
        "kill -9 in the middle of tessera keys rewrap: every key still opens under the old key-encryption key and none under the new; run again, all move"
    )
    func rewrapKilled() async throws {
        let fixture = try await Fixture()
        var entries = [try await fixture.ring.generate(.es256, activate: true, now: Date())]
        for _ in 0..<19 { entries.append(try await fixture.ring.generate(.es256, activate: false, now: Date())) }
        let (oldFile, newFile) = (fixture.folder.appending("kek"), fixture.folder.appending("new"))
        let newRing = PostgresKeyRing(database: fixture.pool, kek: try KeyEncryptionKey.create(at: newFile))
        // Each row re-sealed takes 0.1 s more (a trigger in this test's schema): the rewrap's transaction stays open ~2 s.
        try await fixture.pool.execute(
            "CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.1); RETURN NEW; END $$")
        try await fixture.pool.execute("CREATE TRIGGER slow_row BEFORE UPDATE ON signing_keys FOR EACH ROW EXECUTE FUNCTION slow_row()")
        let name = "rewrap-\(UInt32.random(in: 0...UInt32.max))"
        let rewrap = [
            "keys", "rewrap", "--database", fixture.database.address + "&application_name=\(name)", "--key-encryption-key-file", oldFile,
            "--new-key-encryption-key-file", newFile,
        ]
        let child = try ChildProcess(builtExecutable("tessera"), rewrap, output: .null)
        let session = "FROM pg_stat_activity WHERE application_name = '\(name)'"
        var updating = false
        for _ in 0..<500 where !updating {
            updating = try await fixture.pool.strings("SELECT count(*)::text \(session) AND query LIKE 'UPDATE signing_keys%'") == ["1"]
            if !updating { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(updating, "the rewrap never reached its updates")
        try await Task.sleep(for: .milliseconds(500))  // a few rows re-sealed inside the open transaction
        child.kill(SIGKILL)
        child.wait()
        // The server rolls the transaction back when it finds its client gone, at the end of the row it is on.
        var gone = false
        for _ in 0..<500 where !gone {
            gone = try await fixture.pool.strings("SELECT count(*)::text \(session)") == ["0"]
            if !gone { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(gone)
        #expect(try await fixture.pool.strings("SELECT DISTINCT kek_id FROM signing_keys") == [fixture.kek.id])
        for entry in entries {
            #expect(try await fixture.ring.signingKey(entry).keyID == entry.kid)
            await #expect(throws: KeyStoreError.self) { _ = try await newRing.signingKey(entry) }
        }
        // Run again to the end: every key moves, and opens under the new key only.
        try await fixture.pool.execute("DROP TRIGGER slow_row ON signing_keys")
        let again = try await runTessera(rewrap)
        #expect(again.status == 0 && again.out.contains("re-sealed 20 keys"), "\(again.out) \(again.err)")
        for entry in entries {
            #expect(try await newRing.signingKey(entry).keyID == entry.kid)
            await #expect(throws: KeyStoreError.self) { _ = try await fixture.ring.signingKey(entry) }
        }
    }
}
