import Foundation
import PostgresNIO
import TesseraIssuer

/// `tessera store check --database`: what the file store's check is for its files, for the database —
/// every client and user document read back as the servers read it, the registry validated, the families
/// counted. Changes nothing. PostgreSQL recovers its own pages after a crash (its WAL); what this finds is
/// what a hand edit or a bad restore left.
public struct DatabaseCheck: Sendable {
    public var schemaVersion = 0
    public var clients = 0
    public var users = 0
    public var consents = 0
    public var liveFamilies = 0
    public var revokedFamilies = 0
    /// What does not read back: the row's key and why. Empty when the database is intact.
    public var problems: [String] = []

    public static func run(_ database: PostgresDatabase) async throws -> DatabaseCheck {
        var report = DatabaseCheck()
        try await Schema.check(database)
        report.schemaVersion = Schema.current
        let documents = try await database.withConnection { connection in
            var rows: [(table: String, key: String, document: String)] = []
            for table in ["clients", "users"] {
                let key = table == "clients" ? "client_id" : "username"
                let query = PostgresQuery(unsafeSQL: "SELECT \(key), document FROM \(table) ORDER BY position")
                for try await (name, document) in try await connection.query(query, logger: connection.logger).decode((String, String).self) {
                    rows.append((table, name, document))
                }
            }
            return rows
        }
        var registry = ClientRegistry()
        for row in documents {
            do {
                if row.table == "clients" {
                    let client = try PostgresRegistries.decoder.decode(Client.self, from: Data(row.document.utf8))
                    guard client.id == row.key else { throw DatabaseError(.unavailable, "its document names client \(client.id)") }
                    registry.clients.append(client)
                    report.clients += 1
                } else {
                    let user = try PostgresRegistries.decoder.decode(User.self, from: Data(row.document.utf8))
                    guard user.username == row.key else { throw DatabaseError(.unavailable, "its document names user \(user.username)") }
                    report.users += 1
                }
            } catch {
                report.problems.append("\(row.table) row \(DatabaseURL.quoted(row.key)): \((error as? DatabaseError)?.message ?? "does not parse")")
            }
        }
        do { try registry.validate() } catch { report.problems.append("clients: \(error)") }
        let counts = try await database.strings(
            """
            SELECT (SELECT count(*) FROM consents)::text || ' ' || (SELECT count(*) FILTER (WHERE NOT revoked) FROM refresh_families)::text
                || ' ' || (SELECT count(*) FILTER (WHERE revoked) FROM refresh_families)::text
            """)
        let numbers = (counts.first ?? "").split(separator: " ").compactMap { Int($0) }
        if numbers.count == 3 { (report.consents, report.liveFamilies, report.revokedFamilies) = (numbers[0], numbers[1], numbers[2]) }
        return report
    }
}
