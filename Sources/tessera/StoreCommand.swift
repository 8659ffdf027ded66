import ArgumentParser
import Foundation
import TesseraIssuer
import TesseraPostgres

/// `tessera store …`: inspect, repair and revoke in the refresh-token store while the server is stopped.
struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract:
            "Check, repair, or revoke in the refresh-token store (stop the server first: one process per store; revoke also takes --database, with the servers running).",
        subcommands: [Check.self, Repair.self, Revoke.self]
    )

    static let defaultData = "data"

    /// The store inside the data folder.
    static func storePath(_ data: String) -> String {
        URL(fileURLWithPath: data).appendingPathComponent(FileRefreshTokenStore.folderName).path
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Read every file of the store (or, with --database, every client and user row) and report; changes nothing. Exit 1 on damage."
        )

        @Option(help: "The data folder (the store is its refresh-tokens/ folder).")
        var data = StoreCommand.defaultData

        @OptionGroup var database: DatabaseOption

        @Flag(help: "Print the report as JSON.")
        var json = false

        func run() async throws {
            if database.resolved != nil { return try await checkDatabase() }
            let report = try storeCall(data: data) { try FileRefreshTokenStore.check(directory: StoreCommand.storePath(data)) }
            if json {
                var object: [String: Any] = [
                    "directory": report.directory, "files": report.files, "families": report.families,
                    "revoked_families": report.revokedFamilies, "records": report.records,
                    "snapshot_generation": report.snapshotGeneration, "log_generation": report.logGeneration,
                ]
                if let torn = report.tornTail { object["torn_tail"] = ["file": torn.file, "offset": torn.offset, "bytes": torn.bytes] }
                let text = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
                print(String(decoding: text, as: UTF8.self))
                return
            }
            print("store \(report.directory): intact")
            print("  files: \(report.files.joined(separator: ", "))")
            print("  families: \(report.families) live, \(report.revokedFamilies) revoked (kept until they expire)")
            print("  records read: \(report.records)")
            if let torn = report.tornTail {
                print(
                    "  torn last record in \(torn.file) at offset \(torn.offset) (\(torn.bytes) bytes): never acknowledged; the next start drops it")
            }
        }
    }

}

extension StoreCommand.Check {
    /// The database's check: the documents read back, the registry validated, the rows counted.
    func checkDatabase() async throws {
        let report = try await withDatabase(database) { pool in try await DatabaseCheck.run(pool) }
        if json {
            let object: [String: Any] = [
                "schema_version": report.schemaVersion, "clients": report.clients, "users": report.users, "consents": report.consents,
                "families": report.liveFamilies, "revoked_families": report.revokedFamilies, "problems": report.problems,
            ]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted]), as: UTF8.self))
        } else {
            print("database: \(report.problems.isEmpty ? "intact" : "\(report.problems.count) problem(s)") (schema \(report.schemaVersion))")
            print("  clients: \(report.clients), users: \(report.users), consents: \(report.consents)")
            print("  families: \(report.liveFamilies) live, \(report.revokedFamilies) revoked (kept until they expire)")
            for problem in report.problems { print("  \(problem)") }
        }
        if !report.problems.isEmpty { throw ExitCode(1) }
    }
}

extension StoreCommand {
    struct Repair: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a damaged store usable: keep every intact record before the damage, move the rest aside, revoke every family.",
            discussion: """
                Records after the damage are lost; revocations and rotations may be among them, so by default every \
                family is revoked afterwards (users sign in again). --keep-families skips that and accepts that a \
                revoked or rotated-away refresh token may work again.
                """
        )

        @Option(help: "The data folder (the store is its refresh-tokens/ folder).")
        var data = StoreCommand.defaultData

        @Flag(help: "Do not revoke every family after a repair (unsafe: see above).")
        var keepFamilies = false

        @OptionGroup var database: DatabaseOption

        func validate() throws {
            guard database.resolved == nil else {
                throw ValidationError(
                    "repair is for the data folder's store: PostgreSQL recovers its own pages after a crash; `tessera store check --database` reports what its rows hold (unset TESSERA_DATABASE to repair a data folder)"
                )
            }
        }

        func run() async throws {
            let repair = try await storeCallAsync(data: data) {
                try await FileRefreshTokenStore.repair(directory: StoreCommand.storePath(data), revokeEveryFamily: !keepFamilies)
            }
            for action in repair.actions { print(action) }
            if keepFamilies, repair.actions != ["nothing to repair"] {
                printError("warning: families were kept; a token revoked or rotated after the damage point may be accepted again")
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Revoke refresh-token families: all (key compromise, or after restoring a backup), a client's, a user's, or a subject's.",
            discussion: """
                After restoring the store from a backup, run `tessera store revoke --all`: the backup does not know \
                the revocations and rotations made since it was taken, and would otherwise bring those tokens back.
                """
        )

        @OptionGroup var options: ClientsCommand.DataOptions

        @Flag(help: "Revoke every family.")
        var all = false

        // .unconditional: the value is taken even when it begins with "-" (ids and usernames may).
        @Option(parsing: .unconditional, help: "Revoke every family of this client.")
        var client: String?

        @Option(parsing: .unconditional, help: "Revoke every family of this subject (a user's sub: `tessera users show NAME`).")
        var subject: String?

        @Option(parsing: .unconditional, help: "Revoke every family of this user (by username: their sub, and families from before users had one).")
        var user: String?

        func validate() throws {
            guard [all, client != nil, subject != nil, user != nil].filter({ $0 }).count == 1 else {
                throw ValidationError("give exactly one of --all, --client ID, --user USERNAME, --subject SUB")
            }
        }

        func run() async throws {
            let count = try await storeCallAsync(data: options.data) {
                try await options.withState { state in
                    let store = try state.refreshTokens()
                    defer { (store as? FileRefreshTokenStore)?.close() }
                    if all { return try await store.revokeAllFamilies() }
                    if let client { return try await store.revokeFamilies(ofClient: client) }
                    if let user {
                        guard let found = try await state.users.users().named(user) else { throw CLIError("no user \(user)") }
                        // Families issued before users had a sub name the user by username.
                        return try await store.revokeFamilies(ofSubject: found.subject) + store.revokeFamilies(ofSubject: found.username)
                    }
                    return try await store.revokeFamilies(ofSubject: subject!)
                }
            }
            print("revoked \(count) \(count == 1 ? "family" : "families")")
        }
    }
}

private func storeCall<T>(data: String, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as RefreshTokenStoreError { throw CLIError(Hint.message(error, data: data)) }
}

private func storeCallAsync<T>(data: String, _ body: () async throws -> T) async throws -> T {
    do { return try await body() } catch let error as RefreshTokenStoreError { throw CLIError(Hint.message(error, data: data)) }
}
