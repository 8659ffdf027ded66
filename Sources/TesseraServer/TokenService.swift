import Foundation
public import Logging
public import TesseraIssuer
public import TesseraJOSE

/// Where the server listens and keeps its state. Every member has a default, so `tessera serve` works
/// on a fresh clone.
public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// The `iss` of every token and the base of every metadata URL. Configured, never taken from `Host`.
    public var issuer: String?
    public var keysPath = "keys"
    public var dataPath = "data"
    /// Form bodies larger than this are refused (413) before parsing.
    public var maximumBodySize = 16 * 1024
    /// Register a demo client on first start when there is none.
    public var createDemoClient = true
    /// Timeouts and the connection cap (`docs/configuration.md`, "Connections").
    public var connections = ConnectionLimits()
    /// Where `/metrics` listens: its own address, loopback by default, so the main port (which a proxy may
    /// expose) never serves it (`docs/operations.md`); nil: no metrics listener.
    public var metricsAddress: ListenAddress? = ListenAddress(host: "127.0.0.1", port: 9464)
    /// PostgreSQL address (`postgres://…`) of the state several instances share; nil: the data folder.
    public var database: String?
    /// Connections to PostgreSQL this instance opens at most.
    public var databasePoolSize = 16
    /// With `database`: the key-encryption key file that makes the key ring the database's too (issue 16);
    /// nil: the key folder.
    public var keyEncryptionKeyFile: String?

    public init() {}

    public var issuerURL: String { issuer ?? "http://\(host):\(port)" }

    /// Whether the issuer URL is plain http, and whether its host is a loopback one (a development set-up,
    /// where the sign-in cookie cannot be Secure).
    var issuerIsPlainHTTP: Bool { URLComponents(string: issuerURL)?.scheme == "http" }
    var issuerIsLoopback: Bool { isLoopbackHost(URLComponents(string: issuerURL)?.host ?? "") }

    /// The members a configuration file may set (JSON; documented in `docs/configuration.md`).
    struct File: Decodable {
        var host: String?
        var port: Int?
        var issuer: String?
        var keys: String?
        var data: String?
        var maximumBodySize: Int?
        var createDemoClient: Bool?
        var headerTimeout: Double?
        var requestTimeout: Double?
        var idleTimeout: Double?
        var maximumConnections: Int?
        var metricsAddress: String?
        var database: String?
        var databasePoolSize: Int?
        var keyEncryptionKeyFile: String?

        enum CodingKeys: String, CodingKey {
            case host, port, issuer, keys, data
            case maximumBodySize = "max_body_size"
            case createDemoClient = "demo_client"
            case headerTimeout = "header_timeout"
            case requestTimeout = "request_timeout"
            case idleTimeout = "idle_timeout"
            case maximumConnections = "max_connections"
            case metricsAddress = "metrics_address"
            case database
            case databasePoolSize = "database_pool_size"
            case keyEncryptionKeyFile = "key_encryption_key_file"
        }
    }

    /// Reads a JSON configuration file over the defaults. Unknown members are refused (a typo must not
    /// silently leave a default in place).
    public static func load(file path: String) throws -> ServerConfiguration {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard data.count <= 1 << 20, let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ConfigurationError("\(path) must be a JSON object of at most 1 MiB")
        }
        let known: Set<String> = [
            "host", "port", "issuer", "keys", "data", "max_body_size", "demo_client", "header_timeout", "request_timeout", "idle_timeout",
            "max_connections", "metrics_address", "database", "database_pool_size", "key_encryption_key_file",
        ]
        if let unknown = object.keys.first(where: { !known.contains($0) }) {
            throw ConfigurationError("\(path): unknown option \"\(unknown)\" (known: \(known.sorted().joined(separator: ", ")))")
        }
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: data) } catch {
            throw ConfigurationError("\(path): \(error)")
        }
        var configuration = ServerConfiguration()
        configuration.host = file.host ?? configuration.host
        configuration.port = file.port ?? configuration.port
        configuration.issuer = file.issuer
        configuration.keysPath = file.keys ?? configuration.keysPath
        configuration.dataPath = file.data ?? configuration.dataPath
        configuration.maximumBodySize = file.maximumBodySize ?? configuration.maximumBodySize
        configuration.createDemoClient = file.createDemoClient ?? configuration.createDemoClient
        if let seconds = file.headerTimeout { configuration.connections.headerTimeout = .seconds(seconds) }
        if let seconds = file.requestTimeout { configuration.connections.requestTimeout = .seconds(seconds) }
        if let seconds = file.idleTimeout { configuration.connections.idleTimeout = .seconds(seconds) }
        configuration.connections.maximumConnections = file.maximumConnections ?? configuration.connections.maximumConnections
        if let text = file.metricsAddress { configuration.metricsAddress = try ListenAddress.parse(orOff: text) }
        configuration.database = file.database
        configuration.databasePoolSize = file.databasePoolSize ?? configuration.databasePoolSize
        configuration.keyEncryptionKeyFile = file.keyEncryptionKeyFile
        try configuration.validate()
        return configuration
    }

    public func validate() throws {
        guard (0...65_535).contains(port) else { throw ConfigurationError("port must be 0 to 65535") }
        guard (1_024...1 << 20).contains(maximumBodySize) else { throw ConfigurationError("max_body_size must be 1 KiB to 1 MiB") }
        for (name, value) in [
            ("header_timeout", connections.headerTimeout), ("request_timeout", connections.requestTimeout), ("idle_timeout", connections.idleTimeout),
        ] where !(Duration.milliseconds(100)...Duration.seconds(3_600)).contains(value) {
            throw ConfigurationError("\(name) must be 0.1 to 3,600 seconds")
        }
        guard (1...1_000_000).contains(connections.maximumConnections) else { throw ConfigurationError("max_connections must be 1 to 1,000,000") }
        guard (1...1_000).contains(databasePoolSize) else { throw ConfigurationError("database_pool_size must be 1 to 1,000") }
        if keyEncryptionKeyFile != nil, database == nil {
            throw ConfigurationError("key_encryption_key_file seals keys kept in a database: it needs database (--database) too")
        }
        if let issuer {
            // RFC 8414 §2: an https URL without query or fragment (http allowed for loopback development).
            guard let url = URLComponents(string: issuer), let scheme = url.scheme, ["https", "http"].contains(scheme), url.host?.isEmpty == false,
                url.query == nil, url.fragment == nil, !issuer.hasSuffix("/")
            else {
                throw ConfigurationError("issuer must be an absolute http(s) URL without query, fragment or trailing slash")
            }
        }
    }
}

/// A host and port to listen on, written `HOST:PORT` (`[::1]:9464` for an IPv6 literal).
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// `HOST:PORT`, or `off` (nil: no listener).
    public static func parse(orOff text: String) throws -> ListenAddress? {
        if text == "off" { return nil }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port) else {
            throw ConfigurationError("an address is HOST:PORT (for example 127.0.0.1:9464), or off; got \(text.prefix(64))")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ConfigurationError("an address needs a host: 127.0.0.1:\(port)") }
        return ListenAddress(host: host, port: port)
    }
}

public struct ConfigurationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Everything the HTTP layer needs: the key ring, the refresh-token store, the client registry and the
/// token endpoint, opened from the configured folders. `close()` flushes and releases the store.
public final class TokenService: Sendable {
    public let configuration: ServerConfiguration
    public let keys: SigningKeyRing
    /// Where the state lives (`IssuerBackend`): the data folder, or a database shared by several instances.
    public let backend: IssuerBackend
    public let refreshTokens: any RefreshTokenStore
    public let clients: any ClientDirectory
    public let endpoint: TokenEndpoint
    /// Authorization codes (60 s, single use); `/authorize` issues them, the token endpoint redeems them.
    public let codes: any AuthorizationCodeRecords
    /// Browser sessions of the sign-in and consent pages.
    public let sessions: any BrowserSessionRecords
    /// `/authorize`: sign-in, consent, codes.
    public let authorization: AuthorizationFlow
    /// Failed client authentications and passwords, per client, user and address (HTTP 429 past a threshold).
    public let throttle: any FailureCounting
    /// OpenID Connect: ID tokens, UserInfo, RP-initiated logout.
    public let idTokens: IDTokens
    public let userInfo: UserInfoEndpoint
    public let logout: LogoutFlow
    /// The users (a snapshot that follows changes).
    public let users: @Sendable () throws -> [User]
    /// Counters and gauges for `/metrics`.
    public let metrics: ServerMetrics
    /// Requests in flight (for the shutdown log).
    public let activity = RequestActivity()
    private let clock: WallClock
    private let closed = ClosedOnce()

    /// What `registerDemoClient()` found or did.
    public enum DemoClient: Sendable, Equatable {
        /// Registered now; the secret is shown this once (only its SHA-256 is stored).
        case registered(id: String, secret: String)
        /// Registered by an earlier start: its secret cannot be shown again (`tessera clients rotate-secret demo` makes a new one).
        case exists(id: String)
        /// Other clients are registered, or the configuration turns the demo client off.
        case notRegistered
    }

    public static let demoClientID = "demo"

    /// Registers the demo client when no client is registered at all (and the configuration allows it).
    /// `tessera serve` calls it once it listens, so a start that fails (a port in use) registers nothing
    /// and no secret is shown for a server that never ran.
    public func registerDemoClient() async throws -> DemoClient {
        guard configuration.createDemoClient else { return .notRegistered }
        let registry = try await backend.clientStore.read()
        if registry.clients.contains(where: { $0.id.sameBytes(as: Self.demoClientID) }) { return .exists(id: Self.demoClientID) }
        guard registry.clients.isEmpty else { return .notRegistered }
        let secret = try Client.generateSecret()
        let demo = Client(
            id: Self.demoClientID, type: .confidential, secretDigest: Client.digest(ofSecret: secret),
            grants: [.clientCredentials], scopes: ["read", "write"], defaultScopes: ["read"],
            audience: "api", created: clock.now())
        do {
            // `add` checks, under the registry's lock, that no client and no user (THREATS B13) has the name.
            try await backend.clientStore.add(demo)
        } catch let error as RegistrationError where error.code == .clientExists {
            return .exists(id: Self.demoClientID)  // another instance registered it meanwhile
        } catch let error as RegistrationError where error.code == .nameTaken {
            return .notRegistered
        }
        return .registered(id: Self.demoClientID, secret: secret)
    }

    /// `backend` nil: the data folder's (`IssuerBackend.files`), with `throttle`.
    public init(
        configuration: ServerConfiguration, logger: Logger, clock: WallClock = .system, throttle: FailureThrottle = FailureThrottle(),
        passwordChecker: PasswordChecker = .shared, metrics: ServerMetrics = ServerMetrics(), backend: IssuerBackend? = nil
    ) throws {
        self.configuration = configuration
        self.metrics = metrics
        let events: IssuerEventSink = { [metrics] event in metrics.record(event) }
        if configuration.issuerIsPlainHTTP, !configuration.issuerIsLoopback {
            let warning =
                "the issuer is plain http on a non-loopback host: tokens and passwords cross the network in clear, "
                + "and the Secure session cookie of the sign-in pages only works behind TLS"
            logger.warning("\(warning)", metadata: ["issuer": .string(configuration.issuerURL)])
        }
        let backend = try backend ?? .files(dataPath: configuration.dataPath, logger: logger, clock: clock, throttle: throttle, metrics: metrics)
        keys =
            try backend.keys
            ?? SigningKeyRing(
                store: KeyStore(path: configuration.keysPath), bootstrap: true, alsoBootstrap: [.rs256], clock: clock,
                onEvent: Self.logKeyEvents(logger))
        self.clock = clock
        self.backend = backend
        self.throttle = backend.throttle
        refreshTokens = backend.refreshTokens
        clients = backend.clients
        codes = backend.codes
        sessions = backend.sessions
        let users = backend.users
        self.users = users
        // Password checks run on their own bounded pool, never on the threads that serve requests.
        let passwords = PasswordSignIn(users: users, checker: passwordChecker, store: backend.userStore)
        let idTokens = IDTokens(issuer: configuration.issuerURL, keys: keys, users: users, clock: clock)
        self.idTokens = idTokens
        authorization = AuthorizationFlow(
            issuer: configuration.issuerURL, clients: { [clients] in clients.current() },
            users: users, consents: backend.consents,
            codes: codes, sessions: sessions, throttle: backend.throttle, passwords: passwords, clock: clock,
            hintSubject: { idTokens.hintSubject($0) }, events: events,
            log: { message in logger.info("authorize", metadata: ["event": .string(message)]) })
        let store = refreshTokens
        userInfo = UserInfoEndpoint(issuer: configuration.issuerURL, keys: keys, store: store, users: users, clock: clock)
        logout = LogoutFlow(
            clients: { [clients] in clients.current() }, sessions: sessions, idTokens: idTokens,
            log: { message in logger.info("logout", metadata: ["event": .string(message)]) })
        endpoint = TokenEndpoint(
            clients: { [clients] in clients.current() },
            handlers: [
                .clientCredentials: ClientCredentialsGrant(),
                .authorizationCode: AuthorizationCodeGrant(codes: codes, store: store),
                .password: PasswordGrant(passwords: passwords, store: store, clock: clock),
                .refreshToken: RefreshTokenGrant(
                    store: store, users: users, events: events,
                    onReuse: { clientID, familyID in
                        logger.warning(
                            "refresh token reuse: family revoked (RFC 9700 §4.14.2)",
                            metadata: ["client_id": .string(clientID), "family": .string(familyID)])
                    }),
            ],
            minter: AccessTokenMinter(issuer: configuration.issuerURL, keys: keys, clock: clock), idTokens: idTokens, events: events)
    }

    /// The log lines of a key ring's events (the folder's, or a database's).
    public static func logKeyEvents(_ logger: Logger) -> @Sendable (SigningKeyRing.Event) -> Void {
        { event in
            switch event {
            case .tightenedFolder(let path, let formerMode):
                logger.notice(
                    "the key folder held no key yet and was open to group or others: made it private (chmod 700)",
                    metadata: ["folder": .string(path), "former_mode": .string(String(formerMode, radix: 8))])
            case .bootstrapped(let kid, let algorithm) where algorithm == JWSAlgorithm.rs256.name:
                logger.notice("generated and activated an RS256 key for ID tokens (OpenID Connect Core §15.1)", metadata: ["kid": .string(kid)])
            case .bootstrapped(let kid, let algorithm):
                logger.notice("empty key ring: generated and activated an \(algorithm) signing key", metadata: ["kid": .string(kid)])
            case .reloaded(let active, let published) where active.isEmpty:
                logger.critical(
                    "key ring reloaded with no active key: token requests get 503 temporarily_unavailable until one is active (tessera keys generate --activate, or keys rotate)",
                    metadata: ["published": .stringConvertible(published)])
            case .reloaded(let active, let published):
                logger.info(
                    "key ring reloaded", metadata: ["active": .string(active.joined(separator: ",")), "published": .stringConvertible(published)])
            case .reloadFailed(let reason):
                logger.error(
                    "key ring not reloaded; the previous keys stay in use, less any the new manifest withdraws", metadata: ["reason": .string(reason)]
                )
            }
        }
    }

    /// Releases the backend once (flushes and closes the refresh-token store, or the database's connections).
    public func close() async {
        guard closed.first() else { return }
        await backend.close()
    }
}

/// True the first time only.
final class ClosedOnce: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false

    func first() -> Bool {
        lock.withLock {
            defer { done = true }
            return !done
        }
    }
}
