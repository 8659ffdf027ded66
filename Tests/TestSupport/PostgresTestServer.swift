import Foundation
public import TesseraPostgres
public import Testing

/// The PostgreSQL server the tests use: `TESSERA_TEST_DATABASE` (an address whose user may create
/// databases), or `postgres://tessera:tessera@127.0.0.1:5432/postgres?sslmode=disable`, which `.ci/run` sets up. A test
/// process makes one database; each test gets a schema of its own in it, created empty and dropped after.
///
/// Without a server, the PostgreSQL tests are skipped and say why; under CI (`CI=true`) they run anyway
/// and fail, so a CI machine without PostgreSQL cannot pass.
public enum PostgresTestServer {
    public static let adminAddress =
        ProcessInfo.processInfo.environment["TESSERA_TEST_DATABASE"] ?? "postgres://tessera:tessera@127.0.0.1:5432/postgres?sslmode=disable"

    public static var underCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// Whether a server answers at the address's host and port (checked once, by connecting).
    public static let isReachable: Bool = {
        guard let url = try? DatabaseURL(adminAddress) else { return false }
        if let socket = url.socketPath { return FileManager.default.fileExists(atPath: socket) }
        return loopbackAccepts(host: url.host, port: url.port)
    }()

    /// Whether the PostgreSQL tests run: a server answers, or CI insists.
    public static var enabled: Bool { isReachable || underCI }

    public static var skipReason: Comment {
        Comment(
            rawValue: "no PostgreSQL server at \(adminAddress.replacingOccurrences(of: ":tessera@", with: ":***@")) "
                + "(start one, or set TESSERA_TEST_DATABASE; .ci/run does both)")
    }

    /// A new, empty schema (migrated when `migrated`) in this process's test database. A schema, not a
    /// database, per test: creating a database writes a copy of its template through the WAL, and a dozen
    /// at once under the test suite's fsync load took longer than the operation deadline.
    public static func createDatabase(migrated: Bool = true) async throws -> TestDatabase {
        let database = try await processDatabase.value
        let schema = "s_\(UInt32.random(in: 0...UInt32.max))_\(UInt32.random(in: 0...UInt32.max))"
        let pool = try database.pool(schema: nil)
        defer { Task { await pool.close() } }
        try await pool.execute("CREATE SCHEMA \(schema)")
        let test = TestDatabase(name: database.name, schema: schema, url: database.url)
        PostgresCleanup.bin?.add(test)
        if migrated {
            let handle = try test.open()
            defer { Task { await handle.close() } }
            try await Schema.migrate(handle)
        }
        return test
    }

    /// This process's database, named after its pid so leftovers of a crashed run can be told apart and
    /// dropped; created at first use.
    ///
    /// Every PostgreSQL test waits for this one task, so a failure here fails them all: it has a minute per
    /// statement and three attempts. (With the operation deadline's 10 s, a start of the suite whose first
    /// seconds kept both cooperative threads busy failed every PostgreSQL test at once, twice.)
    private static let processDatabase = Task { () throws -> TestDatabase in
        var options = PostgresDatabase.Options()
        options.operationTimeout = .seconds(60)
        options.statementTimeout = .seconds(60)
        let admin = try PostgresDatabase(url: DatabaseURL(adminAddress), options: options)
        defer { Task { await admin.close() } }
        let name = "tessera_test_\(getpid())"
        for attempt in 1...3 {
            do {
                try await dropLeftovers(admin)
                try await admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
                try await admin.execute("CREATE DATABASE \(name)")
                break
            } catch  where attempt < 3 {
                try await Task.sleep(for: .seconds(1))
            }
        }
        var url = try DatabaseURL(adminAddress)
        url.database = name
        return TestDatabase(name: name, schema: nil, url: url)
    }

    /// Drops the test databases of processes that are gone (runs that ended before dropping theirs).
    private static func dropLeftovers(_ admin: PostgresDatabase) async throws {
        for name in try await admin.strings("SELECT datname FROM pg_database WHERE datname LIKE 'tessera_test_%'") {
            let parts = name.split(separator: "_")
            guard parts.count >= 3, let pid = Int32(parts[2]), pid != getpid(), kill(pid, 0) != 0 else { continue }
            try? await admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        }
    }

    static func loopbackAccepts(host: String, port: Int) -> Bool {
        // Another host is taken to be there: its tests then fail with the connection's own error.
        guard host == "localhost" || host == "127.0.0.1" else { return true }
        guard let fd = try? connectLoopback(port: port) else { return false }
        close(fd)
        return true
    }
}

/// One test's schema in the process's test database.
public final class TestDatabase: Sendable {
    public let name: String
    /// The test's schema; nil for the process database itself.
    public let schema: String?
    public let url: DatabaseURL

    init(name: String, schema: String?, url: DatabaseURL) {
        self.name = name
        self.schema = schema
        self.url = url
    }

    /// The address a child process (`tessera serve --database`) reaches this schema at.
    public var address: String {
        var components = URLComponents(string: PostgresTestServer.adminAddress)!
        components.path = "/" + name
        var items = (components.queryItems ?? []).filter { $0.name != "schema" && $0.name != "sslmode" }
        items.append(URLQueryItem(name: "sslmode", value: "disable"))
        if let schema { items.append(URLQueryItem(name: "schema", value: schema)) }
        components.queryItems = items
        return components.string!
    }

    /// A new pool on this schema; closed when the test ends. Four connections unless `options` say
    /// otherwise: tests run in parallel, and 16 per pool ran the server out of its 100 connection slots.
    public func open(options: PostgresDatabase.Options? = nil) throws -> PostgresDatabase {
        let pool = try pool(schema: schema, options: options ?? Self.testOptions)
        PostgresCleanup.bin?.add(pool)
        return pool
    }

    static var testOptions: PostgresDatabase.Options {
        var options = PostgresDatabase.Options()
        options.maximumConnections = 4
        return options
    }

    func pool(schema: String?, options: PostgresDatabase.Options = TestDatabase.testOptions) throws -> PostgresDatabase {
        var url = url
        url.tls = .disable
        var options = options
        options.schema = schema
        return try PostgresDatabase(url: url, options: options)
    }

    /// Drops the test's schema and everything in it.
    public func drop() async {
        guard let schema, let pool = try? pool(schema: nil) else { return }
        try? await pool.execute("DROP SCHEMA IF EXISTS \(schema) CASCADE")
        await pool.close()
    }
}

/// Closes the pools and drops the databases a test made, once the test has ended (a trait on the suites that
/// use `PostgresTestServer`). Not in a `deinit`: Swift may end a fixture's life at its last use, while the
/// store it handed out is still working on the database.
public struct PostgresCleanup: TestTrait, SuiteTrait, TestScoping {
    public var isRecursive: Bool { true }

    final class Bin: @unchecked Sendable {
        private let lock = NSLock()
        private var databases: [TestDatabase] = []
        private var pools: [PostgresDatabase] = []
        func add(_ database: TestDatabase) { lock.withLock { databases.append(database) } }
        func add(_ pool: PostgresDatabase) { lock.withLock { pools.append(pool) } }

        func empty() async {
            let (databases, pools) = lock.withLock { (self.databases, self.pools) }
            for pool in pools { await pool.close() }
            for database in databases { await database.drop() }
        }
    }

    @TaskLocal static var bin: Bin?

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        guard testCase != nil else { return try await function() }
        let bin = Bin()
        do {
            try await Self.$bin.withValue(bin) { try await function() }
        } catch {
            await bin.empty()
            throw error
        }
        await bin.empty()
    }
}

extension Trait where Self == PostgresCleanup {
    /// Drops each test's PostgreSQL databases when it ends.
    public static var postgresCleanup: Self { PostgresCleanup() }
}
