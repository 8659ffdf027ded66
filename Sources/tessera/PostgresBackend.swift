import Foundation
import Logging
import TesseraIssuer
import TesseraJOSE
import TesseraPostgres
import TesseraServer

extension IssuerBackend {
    /// Every store on one PostgreSQL database, for several `tessera serve` behind a load balancer. Fails at
    /// once, with the command that fixes it, when the database cannot be reached or its schema is not the one
    /// this build knows; loads the client and user registries before the server listens.
    static func postgres(
        _ database: PostgresDatabase, keyEncryptionKey: KeyEncryptionKey? = nil, clock: WallClock = .system, logger: Logger
    ) async throws -> IssuerBackend {
        try await database.probe()
        try await Schema.check(database)
        let registries = PostgresRegistries(database: database)
        let refreshTokens = PostgresRefreshTokenStore(database: database, clock: clock)
        let failures = PostgresFailureCounts(database: database)
        let policy = SessionPolicy()
        let maintenance = PostgresMaintenance(
            database: database, registries: registries, refreshTokens: refreshTokens, failures: failures, policy: policy, clock: clock,
            logger: logger)
        // With a key-encryption key the key ring is the database's too (issue 16): bootstrapped like an empty
        // key folder by whichever instance starts first, and followed at every look.
        var signing: SigningKeyRing?
        if let keyEncryptionKey {
            let ring = PostgresKeyRing(database: database, kek: keyEncryptionKey)
            let onEvent = TokenService.logKeyEvents(logger)
            for entry in try await ring.bootstrap(alsoBootstrap: [.rs256], now: clock.now()) {
                onEvent(.bootstrapped(kid: entry.kid, algorithm: entry.alg))
            }
            let follower = try await PostgresKeyRingFollower(ring: ring, clock: clock, onEvent: onEvent)
            maintenance.keys = follower
            signing = follower.signing
        }
        try await maintenance.refresh()
        let clients = registries.clients
        let users = registries.users
        var backend = IssuerBackend(
            location: database.url.description, refreshTokens: refreshTokens, clients: clients, clientStore: clients,
            users: { users.current() }, userStore: users, consents: PostgresConsents(database: database),
            codes: PostgresAuthorizationCodes(database: database, clock: clock),
            sessions: PostgresBrowserSessions(database: database, policy: policy, clock: clock, clients: { clients.current() }),
            throttle: failures, problem: { maintenance.problem }, background: { try await maintenance.run() },
            close: {
                await database.close()
                logger.notice("PostgreSQL connections closed")
            })
        backend.keys = signing
        let poolSize = Double(database.options.maximumConnections)
        backend.gauges = {
            [
                ("tessera_database_up", [], maintenance.problem == nil ? 1 : 0),
                ("tessera_database_look_seconds", [], maintenance.lookSeconds),
                ("tessera_database_pool_connections_max", [], poolSize),
            ]
        }
        return backend
    }
}
