public import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import PostgresNIO
import TesseraJOSE

/// A pool of connections to one PostgreSQL database, bounded in size and in time: what every store of the
/// PostgreSQL backend shares.
///
/// Every operation has a deadline (`Options.operationTimeout`) covering the wait for a connection and the
/// statements; the server enforces its own (`statement_timeout`, `lock_timeout`,
/// `idle_in_transaction_session_timeout`, set at login). A server that is down, restarting or out of
/// connections fails an operation with `DatabaseError.unavailable` within that deadline, never a hang, and
/// the pool reconnects by itself when the server is back.
public final class PostgresDatabase: Sendable {
    public struct Options: Sendable {
        /// Connections the pool opens at most (PostgreSQL's own default limit is 100 for all clients).
        public var maximumConnections = 16
        /// The longest one statement runs, or waits for a row lock, on the server.
        public var statementTimeout: Duration = .seconds(5)
        /// The longest one operation (waiting for a connection, then its statements) takes before it fails.
        public var operationTimeout: Duration = .seconds(10)
        public var connectTimeout: Duration = .seconds(5)
        /// The schema Tessera's tables live in (the connections' `search_path`); nil for the server's default
        /// (`public`). Lets several deployments, or tests, share one database.
        public var schema: String?

        public init() {}
    }

    public let url: DatabaseURL
    public let options: Options
    let client: PostgresClient
    let logger: Logger
    private let runner: Task<Void, Never>
    private let deadlines = Deadlines()
    private let outageState = NIOLockedValueBox<String?>(nil)

    /// Set while the server is known to be down (`PostgresMaintenance`'s last look failed): requests then
    /// fail at once with 503 instead of each waiting out its deadline, and a load balancer sees readiness
    /// fail. Cleared by the next look that succeeds.
    public var outage: String? {
        get { outageState.withLockedValue { $0 } }
        set { outageState.withLockedValue { $0 = newValue } }
    }

    /// Starts the pool (connections open on first use). Call `close()` when done.
    /// `logger` gets the pool's own events (a connection that failed, and why); by default only errors.
    public init(url: DatabaseURL, options: Options = Options(), logger: Logger = PostgresDatabase.quietLogger) throws {
        self.url = url
        self.options = options
        self.logger = logger
        let tls: PostgresClient.Configuration.TLS =
            switch try Self.tlsConfiguration(url) {
            case nil: .disable
            case let configuration?: url.tls == .prefer ? .prefer(configuration) : .require(configuration)
            }
        var configuration: PostgresClient.Configuration
        if let socket = url.socketPath {
            configuration = .init(unixSocketPath: socket, username: url.username, password: url.password, database: url.database)
        } else {
            configuration = .init(
                host: url.host, port: url.port, username: url.username, password: url.password, database: url.database, tls: tls)
        }
        configuration.options.maximumConnections = max(1, options.maximumConnections)
        configuration.options.connectTimeout = options.connectTimeout
        let milliseconds = String(Self.milliseconds(options.statementTimeout))
        configuration.options.additionalStartupParameters = [
            ("statement_timeout", milliseconds), ("lock_timeout", milliseconds),
            ("idle_in_transaction_session_timeout", String(Self.milliseconds(options.operationTimeout) * 2)),
            ("application_name", url.applicationName), ("client_encoding", "UTF8"), ("TimeZone", "UTC"),
        ]
        if let schema = options.schema ?? url.schema { configuration.options.additionalStartupParameters.append(("search_path", schema)) }
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        runner = Task { await client.run() }
    }

    /// Closes every connection; operations after this fail.
    public func close() async {
        deadlines.stop()
        runner.cancel()
        await runner.value
    }

    static func milliseconds(_ duration: Duration) -> Int64 { duration.nanoseconds / 1_000_000 }

    public static var quietLogger: Logger {
        var logger = Logger(label: "tessera.postgres")
        logger.logLevel = .error
        return logger
    }

    /// libpq's modes: prefer and require encrypt without checking who answers; verify-ca checks the
    /// chain, verify-full the name too. Nil for `disable`.
    private static func tlsConfiguration(_ url: DatabaseURL) throws -> TLSConfiguration? {
        var configuration = TLSConfiguration.makeClientConfiguration()
        switch url.tls {
        case .disable: return nil
        case .prefer, .require: configuration.certificateVerification = .none
        case .verifyCA: configuration.certificateVerification = .noHostnameVerification
        case .verifyFull: configuration.certificateVerification = .fullVerification
        }
        if let file = url.rootCertificateFile { configuration.trustRoots = .file(file) }
        return configuration
    }

    /// Connects once, outside the pool, and runs `SELECT 1`: fails at once with the server's own reason
    /// (a wrong password, an unknown database, a refused connection), where the pool would keep retrying
    /// until the operation's deadline. What the `db` commands do first.
    public func probe() async throws {
        do {
            var configuration: PostgresConnection.Configuration
            if let socket = url.socketPath {
                configuration = .init(unixSocketPath: socket, username: url.username, password: url.password, database: url.database)
            } else {
                let tls: PostgresConnection.Configuration.TLS =
                    switch try Self.tlsConfiguration(url) {
                    case nil: .disable
                    case let settings?:
                        url.tls == .prefer
                            ? .prefer(try NIOSSLContext(configuration: settings)) : .require(try NIOSSLContext(configuration: settings))
                    }
                configuration = .init(
                    host: url.host, port: url.port, username: url.username, password: url.password, database: url.database, tls: tls)
            }
            configuration.options.connectTimeout = .milliseconds(Self.milliseconds(options.connectTimeout))
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: Self.quietLogger)
            do {
                _ = try await connection.query("SELECT 1", logger: Self.quietLogger).collect()
                try await connection.close()
            } catch {
                try? await connection.close()
                throw error
            }
        } catch {
            throw Self.translate(error)
        }
    }

    // MARK: Running operations

    /// Runs statements Tessera wrote (administration and tests; never with request data in them).
    package func execute(_ sql: String) async throws {
        try await withConnection { connection in try await connection.run(PostgresQuery(unsafeSQL: sql)) }
    }

    /// The first column of every row a query Tessera wrote returns, as text.
    package func strings(_ sql: String) async throws -> [String] {
        try await withConnection { connection in
            var values: [String] = []
            for try await value in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: connection.logger).decode(String.self) {
                values.append(value)
            }
            return values
        }
    }

    /// Runs `query` (a statement `RETURNING 1` that touches at most 1,000 rows) until a run touches fewer,
    /// each run on its own: no long lock. Returns how many rows it touched in all.
    func inBatches(_ query: PostgresQuery) async throws -> Int {
        var total = 0
        while true {
            let batch = try await withConnection { connection in try await connection.query(query, logger: connection.logger).collect().count }
            total += batch
            if batch < 1_000 { return total }
        }
    }

    /// Runs `body` on a pooled connection within the operation deadline; a failure of the server, the
    /// network or the deadline is `DatabaseError.unavailable`.
    func withConnection<T: Sendable>(
        timeout: Duration? = nil, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await deadline(timeout) { [client] in try await client.withConnection { connection in try await body(connection) } }
    }

    /// Runs `body` in one transaction (READ COMMITTED) on a pooled connection, within the operation
    /// deadline: it commits when `body` returns and rolls back when it throws, so a failure changes nothing.
    func transaction<T: Sendable>(
        timeout: Duration? = nil, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await deadline(timeout) { [client, logger] in
            try await client.withConnection { connection in
                try await connection.withTransaction(logger: logger) { connection in try await body(connection) }
            }
        }
    }

    /// Runs `body` as a task that the shared deadline timer cancels when the operation deadline passes.
    /// (One task and no timer of its own per operation: a task group racing a sleeping child cost a fifth
    /// of the rotation rate.)
    private func deadline<T: Sendable>(_ timeout: Duration?, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let timeout = timeout ?? options.operationTimeout
        let task = Task { try await body() }
        let ticket = deadlines.add(after: timeout) { task.cancel() }
        defer { deadlines.remove(ticket) }
        do {
            return try await withTaskCancellationHandler {
                try await task.value
            } onCancel: {
                task.cancel()
            }
        } catch {
            if deadlines.expired(ticket) {
                throw DatabaseError(.unavailable, "PostgreSQL did not answer within \(Self.milliseconds(timeout)) ms")
            }
            throw Self.translate(error)
        }
    }

    /// Our own errors as they are; PostgreSQL's as `DatabaseError.unavailable` with the server's code and
    /// message (never its detail, which can quote values).
    static func translate(_ error: any Error) -> any Error {
        switch error {
        case let error as PostgresTransactionError:
            if let inner = error.closureError { return translate(inner) }
            return translate(error.beginError ?? error.commitError ?? error.rollbackError ?? DatabaseError(.unavailable, "transaction failed"))
        case let error as PSQLError where error.code == .sslUnsupported:
            return DatabaseError(.unavailable, "the server does not offer TLS, which sslmode asks for: turn ssl on there, or use sslmode=disable")
        case let error as PSQLError:
            if let state = error.serverInfo?[.sqlState] {
                return DatabaseError(.unavailable, "PostgreSQL \(state): \(error.serverInfo?[.message] ?? "")")
            }
            // The cause is a network error (refused, unreachable, TLS); it never holds the password.
            let cause = error.underlying.map { " (\(String(String(describing: $0).prefix(200))))" } ?? ""
            return DatabaseError(.unavailable, "PostgreSQL connection: \(error.code)\(cause)")
        case is CancellationError:
            return DatabaseError(.unavailable, "the operation was cancelled")
        default:
            return error
        }
    }
}

extension PostgresConnection {
    /// Runs a statement and reads its whole answer: an error the server reports while executing it is
    /// thrown here, not lost with an unread result (the next statement would then only see 25P02).
    func run(_ query: PostgresQuery) async throws {
        _ = try await self.query(query, logger: logger).collect()
    }
}

extension PostgresDatabase {
    /// The channel every Tessera schema's change triggers notify on (schema step 4), the payload naming the
    /// schema and table that changed: `public.key_ring`.
    static let changeChannel = "tessera_changes"

    /// Listens for changes to this database's Tessera tables until cancelled, on one connection of the pool
    /// held for it: `onChange` gets the name of each table another session changed (`key_ring`,
    /// `registry_changes`); notifications for other schemas in the database are ignored. `onListening` runs
    /// each time listening starts, before any notification: whatever changed while not listening is found by
    /// looking then. A lost connection is replaced a second later; meanwhile the owner's polling covers.
    func listenForChanges(onListening: @escaping @Sendable () async -> Void, onChange: @escaping @Sendable (String) async -> Void) async {
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    var schema = ""
                    for try await name in try await connection.query("SELECT current_schema()", logger: connection.logger).decode(String.self) {
                        schema = name
                    }
                    try await connection.listen(on: Self.changeChannel) { notifications in
                        await onListening()
                        for try await notification in notifications {
                            let parts = notification.payload.split(separator: ".", maxSplits: 1)
                            if parts.count == 2, parts[0].sameBytes(as: schema) { await onChange(String(parts[1])) }
                        }
                    }
                }
            } catch {
                logger.debug("listening for changes stopped; polling covers until it resumes", metadata: ["reason": .string("\(error)")])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }
}
