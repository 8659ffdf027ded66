import ArgumentParser
import Foundation
import Hummingbird
import Logging
import TesseraServer

/// `tessera serve`: the token service on loopback, on defaults that work on a fresh clone.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the token service (token, revoke, introspect, JWKS, RFC 8414 metadata).",
        discussion: """
            First start: creates the key folder (one ES256 key, active) and the data folder, registers a demo \
            confidential client and prints its id and secret once. Environment: TESSERA_HOST, TESSERA_PORT, \
            TESSERA_ISSUER, TESSERA_KEYS, TESSERA_DATA, TESSERA_CONFIG (flags win over the environment, which wins \
            over the configuration file). SIGHUP reloads the key ring (it is also \
            polled every 2 s); SIGINT/SIGTERM shut down gracefully and flush the refresh-token store.
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
        do { try configuration.validate() } catch { throw CLIError("\(error)") }
        let descriptors = raiseDescriptorLimit()
        // Logs go to standard error, unbuffered: a crash must not eat the last lines. Every value is escaped
        // on the way: requests put text in log lines.
        LoggingSystem.bootstrap { label in EscapingLogHandler(StreamLogHandler.standardError(label: label)) }
        var logger = Logger(label: "tessera")
        logger.logLevel = .info
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
        let service: TokenService
        do {
            service = try TokenService(configuration: configuration, logger: logger)
        } catch {
            throw CLIError("cannot start: " + Hint.message(error, data: configuration.dataPath))
        }
        // Nothing is announced and no demo client registered before the port is bound: a start that fails
        // (a port in use) must not print a secret for a server that never ran.
        let app = buildApplication(service, logger: logger) { [logger, configuration] port in
            logger.notice(
                "tessera listening", metadata: ["address": .string("\(configuration.host):\(port)"), "issuer": .string(configuration.issuerURL)])
            announceDemoClient(service, logger: logger)
        }
        // The key ring's watcher (SIGHUP and polling) runs as a service of the application.
        do {
            try await app.runService()
        } catch {
            service.close()
            throw CLIError(describeStartFailure(error, configuration: configuration) ?? "\(error)")
        }
        service.close()
        logger.notice("tessera stopped; the refresh-token store is flushed and closed")
    }
}

/// Prints the demo client's credentials when this start registered it, or how to get a secret when an
/// earlier start did (its secret is stored only as a digest and cannot be shown again).
private func announceDemoClient(_ service: TokenService, logger: Logger) {
    let issuer = service.configuration.issuerURL
    do {
        switch try service.registerDemoClient() {
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
                a new secret: tessera clients rotate-secret \(id)\(service.configuration.dataPath == "data" ? "" : " --data \(service.configuration.dataPath)")
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
