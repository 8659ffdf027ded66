import Foundation
import TesseraJOSE
import TesseraPostgres
import TesseraTestSupport
import Testing

@testable import TesseraIssuer

@Suite(
    "tessera db import: an embedded deployment moved into PostgreSQL", .postgresCleanup,
    .enabled(if: PostgresTestServer.enabled, PostgresTestServer.skipReason))
struct DatabaseImportTests {
    @Test(
        "Clients, users (same sub and hash), consents and refresh families move; every live token rotates once after the move, a revoked one stays revoked; a second import is refused"
    )
    func importDataFolder() async throws {
        let folder = try TemporaryDirectory("tessera-import")
        defer { folder.remove() }
        let data = folder.appending("data")
        let secret = try Client.generateSecret()
        try ClientStore(dataPath: data).add(
            Client(
                id: "web", type: .confidential, secretDigest: Client.digest(ofSecret: secret), grants: [.password, .refreshToken],
                scopes: ["read"], defaultScopes: ["read"], audience: "api", refreshTokens: RefreshTokenPolicy(retryWindow: 30), created: Date()))
        try UserStore(dataPath: data).add("alice", password: "correct horse battery", claims: ["email=alice@example.com"], now: Date())
        try ConsentStore(dataPath: data).remember(username: "alice", clientID: "web", scope: ["read"], now: Date())
        let alice = try #require(try UserStore(dataPath: data).users().named("alice"))
        let store = try FileRefreshTokenStore(directory: StoreCommand.path(data))
        var live: [RefreshToken] = []
        for index in 0..<5 {
            var token = try await store.issue(
                NewRefreshTokenFamily(
                    clientID: "web", subject: alice.subject, scope: ["read"], authTime: Date(), policy: RefreshTokenPolicy(retryWindow: 30))
            ).token
            for _ in 0..<index { token = try await store.rotate(token, clientID: "web", scope: nil).successor.token }
            live.append(token)
        }
        let revoked = try await store.issue(NewRefreshTokenFamily(clientID: "web", subject: alice.subject, scope: ["read"], authTime: Date())).token
        #expect(try await store.revokeFamily(of: revoked, clientID: "web"))
        store.close()

        let database = try await PostgresTestServer.createDatabase()
        let imported = try await runTessera(["db", "import", "--data", data, "--database", database.address])
        #expect(imported.status == 0, "\(imported.err)")
        #expect(imported.out.contains("imported 1 clients, 1 users, 1 consents, 6 refresh-token families"), "\(imported.out)")

        let pool = try database.open()
        let registries = PostgresRegistries(database: pool)
        #expect(try await registries.clients.read().client("web")?.secretDigest == Client.digest(ofSecret: secret))
        let moved = try #require(try await registries.users.users().named("alice"))
        #expect(moved == alice)
        #expect(try await PostgresConsents(database: pool).covers(username: "alice", clientID: "web", scope: ["read"]))
        let postgres = PostgresRefreshTokenStore(database: pool)
        for token in live {
            let rotation = try await postgres.rotate(token, clientID: "web", scope: nil)
            #expect(rotation.successor.record.subject == alice.subject)
        }
        do {
            _ = try await postgres.rotate(revoked, clientID: "web", scope: nil)
            Issue.record("a revoked family's token rotated after the move")
        } catch let error as RefreshTokenStoreError {
            #expect(error.code == .revoked, "\(error)")
        }

        let again = try await runTessera(["db", "import", "--data", data, "--database", database.address])
        #expect(again.status != 0 && again.err.contains("already holds"), "\(again.err)")
    }
}

enum StoreCommand {
    static func path(_ data: String) -> String { URL(fileURLWithPath: data).appendingPathComponent(FileRefreshTokenStore.folderName).path }
}
