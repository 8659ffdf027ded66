public import Foundation
import PostgresNIO
public import TesseraIssuer
import TesseraJOSE

/// Clients and users in PostgreSQL: a row per client or user holding the JSON document `clients.json` or
/// `users.json` would hold for it. Every change runs in one transaction under the names lock (a client id
/// and a username may not be the same, THREATS B13) and bumps the table's counter in `registry_changes`;
/// a running server keeps a snapshot of each and reloads it when `refresh()` sees the counter move.
public final class PostgresRegistries: @unchecked Sendable {
    let database: PostgresDatabase
    private let lock = NSLock()
    private var clientSnapshot = ClientRegistry()
    private var userSnapshot: [User] = []
    private var generations: (clients: Int64, users: Int64) = (-1, -1)

    /// The clients half (`ClientDirectory`, `ClientRegistryStore`) and the users half (`UserRegistryStore`).
    public var clients: Clients { Clients(registries: self) }
    public var users: Users { Users(registries: self) }

    public init(database: PostgresDatabase) { self.database = database }

    /// Any constant, shared with nothing else: the transaction lock over both namespaces.
    static let namesLock: Int64 = 0x7465_7373_6e61_6d65  // "tessname"

    static let encoder = DocumentCoding.encoder(pretty: false)
    static let decoder = DocumentCoding.decoder

    static func document(_ value: some Encodable) throws -> String { String(decoding: try encoder.encode(value), as: UTF8.self) }

    // MARK: Following changes

    /// Reloads the snapshots whose counter moved since the last look (one query when nothing did).
    public func refresh(timeout: Duration? = nil) async throws {
        let counters = try await database.withConnection(timeout: timeout) { connection in
            var found: [String: Int64] = [:]
            for try await (name, generation) in try await connection.query(
                "SELECT name, generation FROM registry_changes", logger: connection.logger
            ).decode((String, Int64).self) { found[name] = generation }
            return found
        }
        let seen = lock.withLock { generations }
        if let clients = counters["clients"], clients != seen.clients {
            let registry = try await readClients()
            lock.withLock { (clientSnapshot, generations.clients) = (registry, clients) }
        }
        if let users = counters["users"], users != seen.users {
            let all = try await readUsers()
            lock.withLock { (userSnapshot, generations.users) = (all, users) }
        }
    }

    func currentClients() -> ClientRegistry { lock.withLock { clientSnapshot } }
    func currentUsers() -> [User] { lock.withLock { userSnapshot } }

    // MARK: Reading

    func readClients() async throws -> ClientRegistry {
        try await database.withConnection { connection in try await Self.clients(on: connection) }
    }

    func readUsers() async throws -> [User] {
        try await database.withConnection { connection in try await Self.users(on: connection) }
    }

    static func clients(on connection: PostgresConnection) async throws -> ClientRegistry {
        var registry = ClientRegistry()
        for try await text in try await connection.query("SELECT document FROM clients ORDER BY position", logger: connection.logger)
            .decode(String.self)
        {
            registry.clients.append(try decoder.decode(Client.self, from: Data(text.utf8)))
        }
        return registry
    }

    static func users(on connection: PostgresConnection) async throws -> [User] {
        var users: [User] = []
        for try await text in try await connection.query("SELECT document FROM users ORDER BY position", logger: connection.logger)
            .decode(String.self)
        {
            users.append(try decoder.decode(User.self, from: Data(text.utf8)))
        }
        return users
    }

    static func userExists(_ username: String, on connection: PostgresConnection) async throws -> Bool {
        try await connection.query("SELECT 1 FROM users WHERE username = \(username)", logger: connection.logger).collect().isEmpty == false
    }

    static func clientExists(_ id: String, on connection: PostgresConnection) async throws -> Bool {
        try await connection.query("SELECT 1 FROM clients WHERE client_id = \(id)", logger: connection.logger).collect().isEmpty == false
    }

    /// A transaction under the names lock whose changes bump `table`'s counter.
    func change<T: Sendable>(_ table: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await database.transaction { connection in
            try await connection.run("SELECT pg_advisory_xact_lock(\(Self.namesLock))")
            let result = try await body(connection)
            try await connection.run("UPDATE registry_changes SET generation = generation + 1 WHERE name = \(table)")
            return result
        }
    }

    // MARK: Clients

    public struct Clients: ClientDirectory, ClientRegistryStore {
        let registries: PostgresRegistries

        /// The snapshot as of the last `refresh()`.
        public func current() -> ClientRegistry { registries.currentClients() }

        public func read() async throws -> ClientRegistry { try await registries.readClients() }

        /// Runs `body` on the whole registry under the names lock; writes back the clients it added, changed
        /// or removed (validated first, as `clients.json` is).
        public func update<T: Sendable>(_ body: @escaping @Sendable (inout ClientRegistry) throws -> T) async throws -> T {
            try await registries.change("clients") { connection in
                let before = try await PostgresRegistries.clients(on: connection)
                var after = before
                let result = try body(&after)
                try after.validate()
                try await Self.write(from: before, to: after, on: connection)
                return result
            }
        }

        public func add(_ client: Client) async throws {
            try await registries.change("clients") { connection in
                var registry = try await PostgresRegistries.clients(on: connection)
                guard registry.client(client.id) == nil else { throw ClientStore.exists(client.id) }
                guard try await !PostgresRegistries.userExists(client.id, on: connection) else { throw ClientStore.isUser(client.id) }
                registry.clients.append(client)
                try registry.validate()
                try await connection.run(
                    "INSERT INTO clients (client_id, document) VALUES (\(client.id), \(try PostgresRegistries.document(client)))")
            }
        }

        private static func write(from before: ClientRegistry, to after: ClientRegistry, on connection: PostgresConnection) async throws {
            for old in before.clients where after.client(old.id) == nil {
                try await connection.run("DELETE FROM clients WHERE client_id = \(old.id)")
            }
            for client in after.clients where before.client(client.id) != client {
                try await connection.run(
                    """
                    INSERT INTO clients (client_id, document) VALUES (\(client.id), \(try PostgresRegistries.document(client)))
                    ON CONFLICT (client_id) DO UPDATE SET document = excluded.document
                    """)
            }
        }
    }

    // MARK: Users

    public struct Users: UserRegistryStore {
        let registries: PostgresRegistries

        /// The snapshot as of the last `refresh()`: what requests read.
        public func current() -> [User] { registries.currentUsers() }

        public func users() async throws -> [User] { try await registries.readUsers() }

        public func add(_ username: String, password: String, claims: [String], now: Date) async throws {
            // "already exists" before any complaint about the password, and before the cost of hashing it.
            try UserStore.checkName(username)
            try await checkFree(username)
            try await insert(try UserStore.newUser(username, password: password, claims: claims, now: now))
        }

        public func add(_ username: String, passwordHash: String, claims: [String], now: Date) async throws {
            try UserStore.checkName(username)
            try await checkFree(username)
            try await insert(try UserStore.newUser(username, passwordHash: passwordHash, claims: claims, now: now))
        }

        private func checkFree(_ username: String) async throws {
            try await registries.database.withConnection { connection in
                guard try await !PostgresRegistries.userExists(username, on: connection) else { throw UserStore.exists(username) }
                guard try await !PostgresRegistries.clientExists(username, on: connection) else { throw UserStore.isClient(username) }
            }
        }

        /// Writes a user, checking again under the lock that no user or client took the name meanwhile.
        func insert(_ user: User) async throws {
            try await registries.change("users") { connection in
                guard try await !PostgresRegistries.userExists(user.username, on: connection) else { throw UserStore.exists(user.username) }
                guard try await !PostgresRegistries.clientExists(user.username, on: connection) else { throw UserStore.isClient(user.username) }
                try await connection.run(
                    """
                    INSERT INTO users (username, subject, document)
                    VALUES (\(user.username), \(user.subject), \(try PostgresRegistries.document(user)))
                    """)
            }
        }

        @discardableResult
        public func set(_ username: String, claims: [String], now: Date) async throws -> User {
            try await registries.change("users") { connection in
                guard let user = try await Self.locked(username, on: connection) else {
                    throw RegistrationError(.unknownUser, "no user \(username)")
                }
                let changed = try UserStore.changing(user, claims: claims, now: now)
                try await Self.write(changed, on: connection)
                return changed
            }
        }

        public func remove(_ username: String) async throws -> Bool {
            try await registries.change("users") { connection in
                let removed = try await connection.query("DELETE FROM users WHERE username = \(username) RETURNING 1", logger: connection.logger)
                    .collect().count
                try await connection.run("DELETE FROM consents WHERE username = \(username)")
                return removed > 0
            }
        }

        public func replaceHash(_ username: String, with new: String, replacing old: String) async throws {
            try await registries.change("users") { connection in
                guard var user = try await Self.locked(username, on: connection), user.password == old else { return }
                user.password = new
                try await Self.write(user, on: connection)
            }
        }

        private static func locked(_ username: String, on connection: PostgresConnection) async throws -> User? {
            for try await text in try await connection.query(
                "SELECT document FROM users WHERE username = \(username) FOR UPDATE", logger: connection.logger
            ).decode(String.self) {
                return try PostgresRegistries.decoder.decode(User.self, from: Data(text.utf8))
            }
            return nil
        }

        private static func write(_ user: User, on connection: PostgresConnection) async throws {
            try await connection.run("UPDATE users SET document = \(try PostgresRegistries.document(user)) WHERE username = \(user.username)")
        }
    }
}
