import Foundation
public import Logging
public import TesseraIssuer
public import TesseraJOSE

/// Where a server keeps the issuer's state: the data folder (`files`, one instance; the default) or a
/// database several instances share (`TesseraPostgres` builds that one). The routes, grants and pages
/// see only these stores, so both run the same code above them.
public struct IssuerBackend: Sendable {
    /// For the start-up log: the folder, or the database address with its password masked.
    public var location: String
    public var refreshTokens: any RefreshTokenStore
    public var clients: any ClientDirectory
    public var clientStore: any ClientRegistryStore
    /// The users as requests read them (a snapshot that follows changes).
    public var users: @Sendable () throws -> [User]
    public var userStore: any UserRegistryStore
    public var consents: any ConsentRecords
    public var codes: any AuthorizationCodeRecords
    public var sessions: any BrowserSessionRecords
    public var throttle: any FailureCounting
    /// Why the store cannot do its work right now (readiness); nil when it can.
    public var problem: @Sendable () async -> String?
    /// Work that runs beside the server until cancelled (following a database's changes); nil: none.
    public var background: (@Sendable () async throws -> Void)?
    /// Releases the store once the server has answered its last request (flush, lock, connections).
    public var close: @Sendable () async -> Void
    /// The signing key ring when the backend keeps it (a database's, sealed); nil: the key folder's.
    public var keys: SigningKeyRing?
    /// The backend's own gauges for `/metrics` (name, labels, value); none for the data folder's.
    public var gauges: @Sendable () -> [(name: String, labels: [(String, String)], value: Double)] = { [] }

    public init(
        location: String, refreshTokens: any RefreshTokenStore, clients: any ClientDirectory, clientStore: any ClientRegistryStore,
        users: @escaping @Sendable () throws -> [User], userStore: any UserRegistryStore, consents: any ConsentRecords,
        codes: any AuthorizationCodeRecords, sessions: any BrowserSessionRecords, throttle: any FailureCounting,
        problem: @escaping @Sendable () async -> String?, background: (@Sendable () async throws -> Void)? = nil,
        close: @escaping @Sendable () async -> Void
    ) {
        self.location = location
        self.refreshTokens = refreshTokens
        self.clients = clients
        self.clientStore = clientStore
        self.users = users
        self.userStore = userStore
        self.consents = consents
        self.codes = codes
        self.sessions = sessions
        self.throttle = throttle
        self.problem = problem
        self.background = background
        self.close = close
    }

    /// The embedded backend: the refresh-token store, `clients.json`, `users.json` and `consents.json` in the
    /// data folder (locked by this process); codes, browser sessions and failure counts in memory.
    public static func files(
        dataPath: String, logger: Logger, clock: WallClock = .system, throttle: FailureThrottle = FailureThrottle(),
        metrics: ServerMetrics = ServerMetrics()
    ) throws -> IssuerBackend {
        let store = try FileRefreshTokenStore(
            directory: URL(fileURLWithPath: dataPath).appendingPathComponent(FileRefreshTokenStore.folderName).path,
            options: .init(
                clock: clock, onEvent: { event in logger.notice("refresh-token store", metadata: ["event": .string("\(event)")]) },
                onCommit: { [metrics] callers, bytes, seconds in metrics.storeCommit(callers: callers, bytes: bytes, seconds: seconds) }))
        let clientStore = ClientStore(dataPath: dataPath)
        let clients = try ReloadingClientRegistry(store: clientStore) { message in logger.error("\(message)") }
        let userStore = UserStore(dataPath: dataPath)
        let cachedUsers = CachedUsers(store: userStore)
        return IssuerBackend(
            location: "data folder \(dataPath)", refreshTokens: store, clients: clients, clientStore: clientStore,
            users: { try cachedUsers.users() }, userStore: userStore, consents: ConsentStore(dataPath: dataPath),
            codes: AuthorizationCodeStore(clock: clock), sessions: BrowserSessions(clock: clock), throttle: throttle,
            problem: { store.refusal },
            close: {
                let statistics = await store.statistics()
                store.close()
                logger.notice(
                    "refresh-token store flushed and closed",
                    metadata: ["families": .stringConvertible(statistics.families), "log_bytes": .stringConvertible(statistics.logBytes)])
            })
    }
}
