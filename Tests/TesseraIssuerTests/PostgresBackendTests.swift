import Foundation
import TesseraIssuer
import TesseraJOSE
import TesseraPostgres
import TesseraTestSupport
import Testing

@Suite("PostgreSQL addresses (libpq's form)")
struct DatabaseURLTests {
    @Test("postgres:// addresses: user, password, host, port, database, sslmode, a socket folder; the password never shows")
    func parses() throws {
        let full = try DatabaseURL("postgres://app:s%40cret@db.internal:6432/tessera?sslmode=verify-full&sslrootcert=/etc/ca.pem")
        #expect(full.username == "app" && full.password == "s@cret" && full.host == "db.internal" && full.port == 6432)
        #expect(full.database == "tessera" && full.tls == .verifyFull && full.rootCertificateFile == "/etc/ca.pem")
        #expect(!"\(full)".contains("s@cret") && !"\(full)".contains("s%40cret") && "\(full)".contains("app:***@db.internal:6432/tessera"))
        let plain = try DatabaseURL("postgresql://app@localhost/tessera")
        #expect(plain.port == 5432 && plain.password == nil && plain.tls == .prefer && plain.socketPath == nil)
        let socket = try DatabaseURL("postgres://app@/tessera?host=/var/run/postgresql")
        #expect(socket.socketPath == "/var/run/postgresql/.s.PGSQL.5432")
    }

    @Test(
        "Refused with a reason: another scheme, no user, no database, an unknown parameter or sslmode, sslrootcert without verify",
        arguments: [
            "mysql://app@h/db", "postgres://h/db", "postgres://app@h/", "postgres://app@h/db?sslmod=require",
            "postgres://app@h/db?sslmode=allow", "postgres://app@h/db?sslrootcert=/ca.pem", "postgres://app@h/db?host=relative",
            "postgres://app@h:99999/db",
        ])
    func refuses(_ text: String) {
        expectError(ErrorCode<DatabaseError>.badURL) { try DatabaseURL(text) }
    }
}

@Suite(
    "PostgreSQL schema: versioned, idempotent, concurrent migrations", .enabled(if: PostgresTestServer.enabled, PostgresTestServer.skipReason),
    .postgresCleanup)
struct SchemaTests {
    @Test("An empty database is refused with the command to run; migrate brings it to the current version once; a second run applies nothing")
    func migrate() async throws {
        let database = try await PostgresTestServer.createDatabase(migrated: false)
        let pool = try database.open()
        #expect(try await Schema.version(of: pool) == 0)
        let missing = await expectError(ErrorCode<DatabaseError>.schemaMissing) { try await Schema.check(pool) }
        #expect(missing?.message.contains("tessera db migrate") == true)
        #expect(try await Schema.migrate(pool) == Array(1...Schema.current))
        #expect(try await Schema.migrate(pool) == [])
        try await Schema.check(pool)
        await pool.close()
        await database.drop()
    }

    @Test("Eight instances migrating one database at once: each step applied exactly once, no error")
    func concurrentMigrations() async throws {
        let database = try await PostgresTestServer.createDatabase(migrated: false)
        let pools = try (0..<8).map { _ in try database.open() }
        let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
            for pool in pools { group.addTask { try await Schema.migrate(pool) } }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(applied.sorted() == Array(1...Schema.current))
        #expect(try await pools[0].strings("SELECT count(*)::text FROM tessera_schema") == ["\(Schema.current)"])
        for pool in pools { await pool.close() }
        await database.drop()
    }

    @Test("A schema newer than this build is refused by check and by migrate, which changes nothing")
    func newer() async throws {
        let database = try await PostgresTestServer.createDatabase()
        let pool = try database.open()
        try await pool.execute("INSERT INTO tessera_schema (version, summary) VALUES (\(Schema.current + 1), 'from the future')")
        let error = await expectError(ErrorCode<DatabaseError>.schemaNewer) { try await Schema.check(pool) }
        #expect(error?.message.contains("newer") == true)
        await expectError(ErrorCode<DatabaseError>.schemaNewer) { try await Schema.migrate(pool) }
        #expect(try await Schema.version(of: pool) == Schema.current + 1)
        let status = try await DatabaseStatus.read(pool)
        #expect(status.advice?.contains("newer") == true && status.rows.map(\.table) == DatabaseStatus.tables)
        await pool.close()
        await database.drop()
    }
}

@Suite("PostgreSQL unreachable", .enabled(if: PostgresTestServer.enabled, PostgresTestServer.skipReason))
struct DatabaseUnavailableTests {
    @Test("A server that refuses connections: probe names the reason at once; a store operation fails with store_unavailable within the deadline")
    func refused() async throws {
        // A port nothing listens on (bound, then closed), so connections are refused.
        let url = try DatabaseURL("postgres://tessera:tessera@127.0.0.1:\(try unusedLoopbackPort())/none?sslmode=disable")
        var options = PostgresDatabase.Options()
        options.operationTimeout = .seconds(2)
        let pool = try PostgresDatabase(url: url, options: options)
        let probe = await expectError(ErrorCode<DatabaseError>.unavailable) { try await pool.probe() }
        #expect(probe?.message.contains("refused") == true, "\(String(describing: probe))")
        let store = PostgresRefreshTokenStore(database: pool)
        let started = ContinuousClock.now
        await expectError(RefreshTokenStoreError.Code.unavailable) {
            try await store.issue(NewRefreshTokenFamily(clientID: "app", subject: "alice", scope: ["read"], authTime: Date()))
        }
        #expect(ContinuousClock.now - started < .seconds(30), "bounded by the operation deadline, not a hang")
        await pool.close()
    }

    @Test("A wrong password is named by probe (SQLSTATE 28P01) and never echoed")
    func wrongPassword() async throws {
        var url = try DatabaseURL(PostgresTestServer.adminAddress)
        url.password = "not-the-password-\(UInt32.random(in: 0...UInt32.max))"
        let pool = try PostgresDatabase(url: url)
        let error = await expectError(ErrorCode<DatabaseError>.unavailable) { try await pool.probe() }
        #expect(error?.message.contains("28P01") == true && error?.message.contains(url.password!) == false, "\(String(describing: error))")
        await pool.close()
    }
}

@Suite(
    "PostgreSQL refresh families across instances", .enabled(if: PostgresTestServer.enabled, PostgresTestServer.skipReason),
    .postgresCleanup)
struct PostgresInstancesTests {
    /// Four pools on one schema stand in for four `tessera serve`; 64 callers present one token through them.
    static func race(retryWindow: Int) async throws -> (successors: [String], errors: [String], store: PostgresRefreshTokenStore) {
        let database = try await PostgresTestServer.createDatabase()
        let stores = try (0..<4).map { _ in PostgresRefreshTokenStore(database: try database.open()) }
        let family = NewRefreshTokenFamily(
            clientID: "app", subject: "alice", scope: ["read"], authTime: Date(), policy: RefreshTokenPolicy(retryWindow: retryWindow))
        let token = try await stores[0].issue(family).token
        let outcomes = await withTaskGroup(of: Result<String, RefreshTokenStoreError>.self) { group in
            for caller in 0..<64 {
                group.addTask {
                    do {
                        return .success(try await stores[caller % 4].rotate(token, clientID: "app", scope: nil).successor.token.rawValue)
                    } catch let error as RefreshTokenStoreError {
                        return .failure(error)
                    } catch {
                        return .failure(RefreshTokenStoreError(.unavailable, "\(error)"))
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        let successors = outcomes.compactMap { try? $0.get() }
        let errors = outcomes.compactMap { outcome -> String? in
            if case .failure(let error) = outcome { return error.code.rawValue }
            return nil
        }
        return (successors, errors, stores[1])
    }

    @Test("64 concurrent presentations of one token through 4 instances: exactly one rotation, 63 reuse, and the family is revoked")
    func oneWinner() async throws {
        let (successors, errors, store) = try await Self.race(retryWindow: 0)
        #expect(successors.count == 1, "\(errors)")
        #expect(errors.count == 63 && errors.allSatisfy { $0 == "reuse_detected" }, "\(errors)")
        let winner = try #require(successors.first)
        await expectError(RefreshTokenStoreError.Code.revoked) { _ = try await store.rotate(RefreshToken(winner), clientID: "app", scope: nil) }
    }

    @Test("With a retry window, the same 64 presentations all get the one successor; the family stays live")
    func retriesShareTheSuccessor() async throws {
        let (successors, errors, store) = try await Self.race(retryWindow: 30)
        #expect(errors.isEmpty, "\(errors)")
        #expect(successors.count == 64 && Set(successors).count == 1)
        let successor = try #require(successors.first)
        #expect(try await store.record(for: RefreshToken(successor))?.state == .live)
    }
}
