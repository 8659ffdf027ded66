import ArgumentParser
import Foundation
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
        do { try configuration.validate() } catch { throw CLIError("\(error)") }
        // Logs go to standard error, unbuffered: a crash must not eat the last lines.
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        var logger = Logger(label: "tessera")
        logger.logLevel = .info

        let service: TokenService
        do {
            service = try TokenService(configuration: configuration, logger: logger)
        } catch {
            throw CLIError("cannot start: \(error)")
        }
        if let demo = service.demoClient {
            print("""
            registered a demo client (shown once; only its SHA-256 is stored):
              client_id:     \(demo.id)
              client_secret: \(demo.secret)
            try: curl -s -u '\(demo.id):\(demo.secret)' -d grant_type=client_credentials \(configuration.issuerURL)/token
            """)
            fflush(nil)  // all output streams: the secret must be visible while the server runs
        }
        signal(SIGHUP, SIG_IGN)
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        hangup.setEventHandler { service.keys.reload() }
        hangup.resume()
        logger.notice("tessera listening", metadata: ["address": .string("\(configuration.host):\(configuration.port)"), "issuer": .string(configuration.issuerURL)])
        let app = buildApplication(service, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await service.keys.watch() }
            try await app.runService()
            group.cancelAll()
        }
        hangup.cancel()
        service.close()
        logger.notice("tessera stopped; the refresh-token store is flushed and closed")
    }
}
