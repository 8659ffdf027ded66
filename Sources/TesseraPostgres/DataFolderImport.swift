import Foundation
import NIOCore
import PostgresNIO
import TesseraIssuer

/// `tessera db import`: an embedded deployment's state moved into PostgreSQL in one transaction — the
/// clients, the users (their `sub` and password hashes as they are), remembered consents, and every
/// refresh-token family that has not expired (live and revoked, digests, generations and retry states as
/// they are), so every refresh token issued before the move works after it, exactly once.
///
/// Codes, browser sessions and failure counts live in the server's memory and are not moved: a user signs in again.
public enum DataFolderImport {
    public struct Summary: Sendable, Equatable {
        public var clients = 0
        public var users = 0
        public var consents = 0
        public var families = 0
    }

    /// Reads the data folder (its refresh-token store is locked meanwhile, so a running `tessera serve` on it
    /// makes this fail: stop it first) and writes everything in one transaction. Refuses a database that
    /// already holds clients, users or families: importing twice must not merge two states.
    public static func run(dataPath: String, into database: PostgresDatabase) async throws -> Summary {
        guard FileManager.default.fileExists(atPath: dataPath) else { throw DatabaseError(.badURL, "no data folder at \(dataPath)") }
        let registry = try ClientStore(dataPath: dataPath).read()
        let users = try UserStore(dataPath: dataPath).users()
        let consents = try ConsentStore(dataPath: dataPath).consents()
        let store = try FileRefreshTokenStore(directory: URL(fileURLWithPath: dataPath).appendingPathComponent(FileRefreshTokenStore.folderName).path)
        let families: [RefreshFamilyRow]
        do {
            families = try await store.exportFamilies()
            store.close()
        } catch {
            store.close()
            throw error
        }
        try await Schema.check(database)
        return try await database.transaction(timeout: .seconds(600)) { connection in
            try await connection.run("SET LOCAL statement_timeout = '300s'")
            try await connection.run("SELECT pg_advisory_xact_lock(\(PostgresRegistries.namesLock))")
            let held =
                try await connection.query(
                    """
                    SELECT (SELECT count(*) FROM clients) + (SELECT count(*) FROM users) + (SELECT count(*) FROM refresh_families)
                    """, logger: connection.logger
                ).collect().first?.decode(Int64.self) ?? 0
            guard held == 0 else {
                throw DatabaseError(
                    .unavailable,
                    "the database already holds \(held) clients, users or refresh-token families: import into a freshly migrated database")
            }
            var summary = Summary()
            for client in registry.clients {
                try await connection.run(
                    "INSERT INTO clients (client_id, document) VALUES (\(client.id), \(try PostgresRegistries.document(client)))")
                summary.clients += 1
            }
            for user in users {
                try await connection.run(
                    "INSERT INTO users (username, subject, document) VALUES (\(user.username), \(user.subject), \(try PostgresRegistries.document(user)))"
                )
                summary.users += 1
            }
            for consent in consents {
                try await connection.run(
                    """
                    INSERT INTO consents (username, client_id, scopes, granted)
                    VALUES (\(consent.username), \(consent.clientID), \(consent.scopes.sorted().joined(separator: " ")), \(epoch(consent.granted)))
                    """)
                summary.consents += 1
            }
            for row in families {
                _ = try await connection.execute(ImportFamily(row: row), logger: connection.logger)
                summary.families += 1
            }
            try await connection.run("UPDATE registry_changes SET generation = generation + 1")
            return summary
        }
    }
}
