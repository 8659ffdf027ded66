import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Metrics
import ServiceLifecycle
import TesseraIssuer
import TesseraPostgres
import TesseraServer
import UnixSignals

/// `tessera serve`: the token service on loopback, on defaults that work on a fresh clone.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the token service and OpenID provider (authorize, token, revoke, introspect, userinfo, logout, JWKS, metadata).",
        discussion: """
            First start: creates the key folder (an ES256 and an RS256 key, active) and the data folder, registers a demo \
            confidential client and prints its id and secret once. Environment: TESSERA_HOST, TESSERA_PORT, \
            TESSERA_ISSUER, TESSERA_KEYS, TESSERA_DATA, TESSERA_CONFIG, TESSERA_METRICS_ADDRESS, TESSERA_LOG_FORMAT, \
            TESSERA_LOG_LEVEL, TESSERA_DATABASE (flags win over the environment, which wins over the configuration file). \
            With --database the issuer's state is in PostgreSQL, shared by every instance on it (docs/postgresql.md). SIGHUP reloads \
            the key ring (it is also polled every 2 s). SIGINT/SIGTERM shut down gracefully: no new connections, the \
            requests in flight finish (within --shutdown-timeout), the refresh-token store is flushed and closed, exit \
            0; a second signal exits at once. Operations: docs/operations.md.
            """
    )

    @Option(help: "Address to listen on.") var host: String?
    @Option(help: "Port to listen on.") var port: Int?
    @Option(help: "The issuer URL (iss); default http://HOST:PORT. Never taken from the request.") var issuer: String?
    @Option(help: "The key folder.") var keys: String?
    @Option(help: "The data folder (clients, refresh tokens).") var data: String?
    @Option(help: "A JSON configuration file (docs/configuration.md); flags and environment override it.") var config: String?
    @Option(help: "Seconds a request head may take from its first byte (default 10).") var headerTimeout: Double?
    @Option(help: "Seconds a request body may take after its head (default 30).") var requestTimeout: Double?
    @Option(help: "Seconds a kept-alive connection may stay idle (default 60).") var idleTimeout: Double?
    @Option(help: "Connections served at once (default 4096, and below the descriptor limit).") var maxConnections: Int?
    @Option(help: "Where /metrics listens: HOST:PORT, or off (default 127.0.0.1:9464, never the main port).") var metricsAddress: String?
    @Option(help: "text (default) or json (one object per line).") var logFormat: String?
    @Option(help: "trace, debug, info (default), notice, warning, error or critical.") var logLevel: String?
    @Option(help: "Seconds a graceful shutdown waits for requests in flight before it cancels them (default 10).") var shutdownTimeout: Double = 10
    @OptionGroup var database: DatabaseOption
    @Option(help: "Connections to PostgreSQL this instance opens at most (default 16).") var databasePoolSize: Int?
    @Option(
        help: "With --database: keep the signing key ring in the database too, private keys sealed under this key file (tessera keys new-kek).")
    var keyEncryptionKeyFile: String?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        var configuration = ServerConfiguration()
        if let file = config ?? environment["TESSERA_CONFIG"] {
            do { configuration = try ServerConfiguration.load(file: file) } catch { throw CLIError("\(error)") }
        }
        configuration.host = host ?? environment["TESSERA_HOST"] ?? configuration.host
        configuration.port = port ?? environment["TESSERA_PORT"].flatMap(Int.init) ?? configuration.port
        configuration.issuer = issuer ?? environment["TESSERA_ISSUER"] ?? configuration.issuer
        configuration.keysPath = keys ?? environment["TESSERA_KEYS"] ?? configuration.keysPath
        configuration.dataPath = data ?? environment["TESSERA_DATA"] ?? configuration.dataPath
        if let headerTimeout { configuration.connections.headerTimeout = .seconds(headerTimeout) }
        if let requestTimeout { configuration.connections.requestTimeout = .seconds(requestTimeout) }
        if let idleTimeout { configuration.connections.idleTimeout = .seconds(idleTimeout) }
        configuration.connections.maximumConnections = maxConnections ?? configuration.connections.maximumConnections
        configuration.database = database.resolved ?? configuration.database
        configuration.databasePoolSize = databasePoolSize ?? configuration.databasePoolSize
        configuration.keyEncryptionKeyFile =
            keyEncryptionKeyFile ?? environment["TESSERA_KEY_ENCRYPTION_KEY_FILE"] ?? configuration.keyEncryptionKeyFile
        do {
            if let text = metricsAddress ?? environment["TESSERA_METRICS_ADDRESS"] {
                configuration.metricsAddress = try ListenAddress.parse(orOff: text)
            }
            try configuration.validate()
        } catch { throw CLIError("\(error)") }
        let format = logFormat ?? environment["TESSERA_LOG_FORMAT"] ?? "text"
        guard format == "text" || format == "json" else { throw CLIError("--log-format is text or json") }
        let levelName = logLevel ?? environment["TESSERA_LOG_LEVEL"] ?? "info"
        guard let level = Logger.Level(rawValue: levelName) else {
            throw CLIError("--log-level is one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard shutdownTimeout > 0, shutdownTimeout <= 3_600 else { throw CLIError("--shutdown-timeout is more than 0 and at most 3,600 seconds") }
        let descriptors = raiseDescriptorLimit()
        // Without TZ, glibc's localtime() (each text log line's timestamp) stats /etc/localtime on every call;
        // ":/etc/localtime" is the same zone, read once. A TZ the operator set is kept.
        setenv("TZ", ":/etc/localtime", 0)
        // Logs go to standard error, never held back in a buffer: a crash must not eat the last lines (lines
        // logged at once share a write; notices and worse are written before the call returns). Every value is
        // escaped on the way: requests put text in log lines.
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = format == "json" ? JSONLogHandler(label: label) : EscapingLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "tessera")
        logger.logLevel = level
        // Metrics: this process's registry behind swift-metrics, so Hummingbird's MetricsMiddleware reports into it too.
        let metrics = ServerMetrics()
        MetricsSystem.bootstrap(metrics.factory)
        // Each connection is a descriptor; the store, key files and logs need some too. A cap above what the
        // process may open would let a flood of connections take the last descriptors (accept fails, files fail).
        let reserve = 256
        if configuration.connections.maximumConnections > descriptors - reserve {
            let capped = max(1, descriptors - reserve)
            logger.notice(
                "connection cap lowered to fit the descriptor limit",
                metadata: ["max_connections": .stringConvertible(capped), "descriptor_limit": .stringConvertible(descriptors)])
            configuration.connections.maximumConnections = capped
        }

        do { try await probeListeningAddress(configuration) } catch {
            throw CLIError(
                describeStartFailure(error, configuration: configuration) ?? "cannot listen on \(configuration.host):\(configuration.port): \(error)")
        }
        if let address = configuration.metricsAddress {
            var probe = configuration
            (probe.host, probe.port) = (address.host, address.port)
            do { try await probeListeningAddress(probe) } catch {
                throw CLIError(
                    "metrics: " + (describeStartFailure(error, configuration: probe) ?? "cannot listen on \(address): \(error)")
                        + " (--metrics-address HOST:PORT moves /metrics, --metrics-address off turns it off)")
            }
        }
        let backend = try await openDatabase(configuration, logger: logger)
        let service: TokenService
        do {
            service = try TokenService(configuration: configuration, logger: logger, metrics: metrics, backend: backend)
        } catch {
            await backend?.close()
            throw CLIError("cannot start: " + Hint.message(error, data: configuration.dataPath))
        }
        logger.notice("issuer state", metadata: ["in": .string(service.backend.location)])
        if configuration.database != nil, FileManager.default.fileExists(atPath: configuration.dataPath + "/" + ClientStore.fileName) {
            logger.warning(
                "the data folder holds clients, users or refresh tokens that this server does not use: it runs on the database; tessera db import moves them",
                metadata: ["data": .string(configuration.dataPath)])
        }
        // Nothing is announced and no demo client registered before the port is bound: a start that fails
        // (a port in use) must not print a secret for a server that never ran.
        let app = buildApplication(service, logger: logger) { [logger, configuration] port in
            logger.notice(
                "tessera listening", metadata: ["address": .string("\(configuration.host):\(port)"), "issuer": .string(configuration.issuerURL)])
            await announceDemoClient(service, logger: logger)
            notifySystemd("READY=1")  // Type=notify units (deploy/tessera.service)
        }
        // One service group: the application (its HTTP server, then the metrics listener, the key ring's watcher
        // and the refresh-token store, shut down in that order). SIGTERM or SIGINT starts a graceful shutdown,
        // bounded by --shutdown-timeout; a second signal exits at once.
        var group = ServiceGroupConfiguration(services: [.init(service: app)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        group.maximumGracefulShutdownDuration = .milliseconds(Int64(shutdownTimeout * 1_000))
        group.maximumCancellationDuration = .seconds(5)
        let signals = ShutdownSignals(activity: service.activity, timeout: shutdownTimeout, logger: logger)
        do {
            try await ServiceGroup(configuration: group).run()
        } catch {
            await service.close()
            throw CLIError(describeStartFailure(error, configuration: configuration) ?? "\(error)")
        }
        signals.cancel()
        await service.close()
        logger.notice(
            "tessera stopped",
            metadata: [
                "requests_drained": .stringConvertible(service.activity.answered - (signals.answeredAtSignal ?? service.activity.answered)),
                "requests_cut": .stringConvertible(service.activity.inFlight),
            ])
    }
}

/// The PostgreSQL backend when the configuration names a database (nil: the data folder's). Refuses to start,
/// saying why and what to run, when the database cannot be reached or its schema is not this build's.
private func openDatabase(_ configuration: ServerConfiguration, logger: Logger) async throws -> IssuerBackend? {
    guard let address = configuration.database else { return nil }
    var options = PostgresDatabase.Options()
    options.maximumConnections = configuration.databasePoolSize
    let database: PostgresDatabase
    do { database = try PostgresDatabase(url: DatabaseURL(address), options: options) } catch let error as DatabaseError {
        throw CLIError("--database: \(error.message)")
    }
    var keyEncryptionKey: KeyEncryptionKey?
    if let file = configuration.keyEncryptionKeyFile {
        do { keyEncryptionKey = try KeyEncryptionKey(file: file) } catch let error as KeyStoreError {
            await database.close()
            throw CLIError("--key-encryption-key-file: \(error.message)")
        }
    }
    do {
        return try await IssuerBackend.postgres(database, keyEncryptionKey: keyEncryptionKey, logger: logger)
    } catch {
        await database.close()
        throw CLIError("cannot start: \(database.url): \((error as? DatabaseError)?.message ?? (error as? KeyStoreError)?.message ?? "\(error)")")
    }
}

/// Prints the demo client's credentials when this start registered it, or how to get a secret when an
/// earlier start did (its secret is stored only as a digest and cannot be shown again).
private func announceDemoClient(_ service: TokenService, logger: Logger) async {
    let issuer = service.configuration.issuerURL
    do {
        switch try await service.registerDemoClient() {
        case .registered(let id, let secret):
            print(
                """
                registered a demo client (shown once; only its SHA-256 is stored):
                  client_id:     \(id)
                  client_secret: \(secret)
                try: curl -s -u '\(id):\(secret)' -d grant_type=client_credentials \(issuer)/token
                """)
        case .exists(let id):
            print(
                """
                the demo client "\(id)" was registered by an earlier start, which showed its secret once (only its SHA-256 is kept).
                a new secret: tessera clients rotate-secret \(id)\(service.configuration.database != nil ? " --database URL" : service.configuration.dataPath == "data" ? "" : " --data \(service.configuration.dataPath)")
                """)
        case .notRegistered:
            break
        }
    } catch {
        logger.error("the demo client could not be registered", metadata: ["reason": .string("\(error)")])
    }
    fflush(nil)  // all output streams: the secret must be visible while the server runs
}

/// Raises the soft limit on open descriptors to the hard limit (as servers do at start) and returns the limit.
private func raiseDescriptorLimit() -> Int {
    #if canImport(Glibc)
    let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    let resource = RLIMIT_NOFILE
    #endif
    var limit = rlimit()
    guard getrlimit(resource, &limit) == 0 else { return 1_024 }
    if limit.rlim_cur < limit.rlim_max {
        var raised = limit
        raised.rlim_cur = limit.rlim_max
        if setrlimit(resource, &raised) == 0 { limit = raised }
    }
    return Int(clamping: limit.rlim_cur)
}

/// Watches SIGTERM and SIGINT beside the service group: the first is logged with what the shutdown will
/// wait for (the group does the shutting down); the second ends the process at once, exit status 1.
/// (Acknowledged refresh-token writes are already on disk: only requests in flight are cut.)
private final class ShutdownSignals: @unchecked Sendable {
    private let sources: [any DispatchSourceSignal]
    private let lock = NSLock()
    private var seen = 0
    private var answered: Int?

    /// Requests answered before the first signal (nil: no signal came).
    var answeredAtSignal: Int? { lock.withLock { answered } }

    init(activity: RequestActivity, timeout: Double, logger: Logger) {
        sources = [SIGTERM, SIGINT].map { DispatchSource.makeSignalSource(signal: $0, queue: .global()) }
        for source in sources {
            source.setEventHandler { [self] in
                let count = lock.withLock {
                    seen += 1
                    if seen == 1 { answered = activity.answered }
                    return seen
                }
                if count == 1 {
                    notifySystemd("STOPPING=1")
                    logger.notice(
                        "shutting down: no new connections; finishing the requests in flight, then flushing the refresh-token store",
                        metadata: [
                            "requests_in_flight": .stringConvertible(activity.inFlight), "timeout_seconds": .stringConvertible(timeout),
                        ])
                } else {
                    logger.critical("second signal: exiting at once", metadata: ["requests_in_flight": .stringConvertible(activity.inFlight)])
                    _exit(1)
                }
            }
            source.resume()
        }
    }

    func cancel() { for source in sources { source.cancel() } }
}
