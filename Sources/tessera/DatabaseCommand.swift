import ArgumentParser
import Foundation
import TesseraIssuer
import TesseraPostgres

/// `--database URL`, also read from `TESSERA_DATABASE`: where the issuer's state lives when it is not the
/// data folder (issue 15).
struct DatabaseOption: ParsableArguments {
    @Option(
        name: .customLong("database"),
        help: ArgumentHelp(
            "PostgreSQL address: postgres://USER:PASSWORD@HOST:PORT/DB[?sslmode=…]; default: $TESSERA_DATABASE.",
            valueName: "url"))
    var address: String?

    /// The address given, or `TESSERA_DATABASE`'s; nil when neither is set.
    var resolved: String? {
        if let address, !address.isEmpty { return address }
        let environment = ProcessInfo.processInfo.environment["TESSERA_DATABASE"]
        return environment.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Opens the pool the command needs, or fails naming both ways to give the address.
    func open() throws -> PostgresDatabase {
        guard let text = resolved else { throw CLIError("no database: give --database postgres://… or set TESSERA_DATABASE") }
        do {
            return try PostgresDatabase(url: DatabaseURL(text))
        } catch let error as DatabaseError {
            throw CLIError("--database: \(error.message)")
        }
    }
}

/// Runs `body` with an open pool and closes it after, whatever happens; the database's errors become
/// messages for the user.
func withDatabase<T>(_ option: DatabaseOption, _ body: (PostgresDatabase) async throws -> T) async throws -> T {
    let database = try option.open()
    let outcome: Result<T, any Error>
    do {
        try await database.probe()
        outcome = .success(try await body(database))
    } catch {
        outcome = .failure(error)
    }
    await database.close()
    do { return try outcome.get() } catch let error as DatabaseError { throw CLIError("\(database.url): \(error.message)") }
}

/// `tessera db …`: the PostgreSQL schema.
struct DatabaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "Create, upgrade and inspect the PostgreSQL schema (several tessera serve on one database).",
        subcommands: [Migrate.self, Status.self, Import.self]
    )

    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create or upgrade the schema: versioned, in one transaction, safe when several instances run it at once.")

        @OptionGroup var database: DatabaseOption

        func run() async throws {
            try await withDatabase(database) { database in
                let applied = try await Schema.migrate(database)
                if applied.isEmpty {
                    print("schema already at version \(Schema.current)")
                } else {
                    print(
                        "applied version\(applied.count == 1 ? "" : "s") \(applied.map(String.init).joined(separator: ", ")): schema at \(Schema.current)"
                    )
                }
            }
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Move an embedded deployment (clients, users, consents, live refresh tokens; with --keys, the key ring) into a freshly migrated database.",
            discussion: """
                Stop the tessera serve that uses the data folder first (its store is locked while it runs). Every refresh \
                token issued before the move keeps working after it; sign-in sessions and pending codes are not moved. \
                The data folder is only read: keep it until the servers on the database run as they should.
                """)

        @Option(help: "The data folder to import from (default data; with --keys alone, none).") var data: String?
        @Option(help: "A key folder to import: its ring with kids, states and times, private keys sealed (needs --key-encryption-key-file).")
        var keys: String?
        @Option(name: .customLong("key-encryption-key-file"), help: "The key file that seals imported private keys (tessera keys new-kek).")
        var keyEncryptionKeyFile: String?
        @OptionGroup var database: DatabaseOption

        func run() async throws {
            let kek: KeyEncryptionKey? = try keys.map { _ in
                guard let file = keyEncryptionKeyFile ?? ProcessInfo.processInfo.environment["TESSERA_KEY_ENCRYPTION_KEY_FILE"] else {
                    throw CLIError("--keys seals the private keys: give --key-encryption-key-file FILE (tessera keys new-kek --out FILE makes one)")
                }
                return try keyStoreCall { try KeyEncryptionKey(file: file) }
            }
            let dataPath = data ?? (keys == nil ? StoreCommand.defaultData : nil)
            try await withDatabase(database) { pool in
                if let dataPath {
                    let summary = try await clientCall { try await DataFolderImport.run(dataPath: dataPath, into: pool) }
                    print(
                        "imported \(summary.clients) clients, \(summary.users) users, \(summary.consents) consents, \(summary.families) refresh-token families"
                    )
                }
                if let keys, let kek {
                    let count = try await keyStoreCall { try await PostgresKeyRing(database: pool, kek: kek).importFolder(KeyStore(path: keys)) }
                    print("imported the key ring of \(keys): \(count) keys sealed under key-encryption key \(kek.id)")
                }
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the schema version and how many rows each table holds.")

        @OptionGroup var database: DatabaseOption

        @Flag(help: "Print the status as JSON.")
        var json = false

        func run() async throws {
            try await withDatabase(database) { database in
                let status = try await DatabaseStatus.read(database)
                if json {
                    var object: [String: Any] = ["schema_version": status.version, "supported_version": Schema.current]
                    object["tables"] = Dictionary(uniqueKeysWithValues: status.rows.map { ($0.table, $0.count) })
                    let text = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
                    print(String(decoding: text, as: UTF8.self))
                    return
                }
                print("database \(database.url)")
                print("  schema version: \(status.version) (this tessera: \(Schema.current))\(status.advice.map { " — \($0)" } ?? "")")
                for (table, count) in status.rows { print("  \(table): \(count) rows") }
            }
        }
    }
}
