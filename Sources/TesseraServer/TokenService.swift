import Foundation
import Logging
import TesseraIssuer
import TesseraJOSE

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

    public init() {}

    public var issuerURL: String { issuer ?? "http://\(host):\(port)" }
}

/// Everything the HTTP layer needs: the key ring, the refresh-token store, the client registry and the
/// token endpoint, opened from the configured folders. `close()` flushes and releases the store.
public final class TokenService: Sendable {
    public let configuration: ServerConfiguration
    public let keys: SigningKeyRing
    public let refreshTokens: FileRefreshTokenStore
    public let clients: ReloadingClientRegistry
    public let endpoint: TokenEndpoint
    /// Failed client authentications and passwords, per client, user and address (HTTP 429 past a threshold).
    public let throttle: FailureThrottle
    /// Set when this start registered the demo client: its secret, to print once.
    public let demoClient: (id: String, secret: String)?

    public init(configuration: ServerConfiguration, logger: Logger, clock: WallClock = .system, throttle: FailureThrottle = FailureThrottle()) throws {
        self.configuration = configuration
        self.throttle = throttle
        keys = try SigningKeyRing(store: KeyStore(path: configuration.keysPath), bootstrap: true, clock: clock) { event in
            switch event {
            case .bootstrapped(let kid): logger.notice("empty key folder: generated and activated an ES256 signing key", metadata: ["kid": .string(kid)])
            case .reloaded(let active, let published): logger.info("key ring reloaded", metadata: ["active": .string(active.joined(separator: ",")), "published": .stringConvertible(published)])
            case .reloadFailed(let reason): logger.error("key ring not reloaded; the previous keys stay in use", metadata: ["reason": .string(reason)])
            }
        }
        let clientStore = ClientStore(dataPath: configuration.dataPath)
        var demo: (String, String)?
        if configuration.createDemoClient {
            let secret = try Client.generateSecret()
            let created: Bool = try clientStore.update { registry in
                guard registry.clients.isEmpty else { return false }
                registry.clients.append(Client(id: "demo", type: .confidential, secretDigest: Client.digest(ofSecret: secret),
                                               grants: [.clientCredentials], scopes: ["read", "write"], defaultScopes: ["read"],
                                               audience: "api", created: clock.now()))
                return true
            }
            if created { demo = ("demo", secret) }
        }
        demoClient = demo
        refreshTokens = try FileRefreshTokenStore(
            directory: URL(fileURLWithPath: configuration.dataPath).appendingPathComponent(FileRefreshTokenStore.folderName).path,
            options: .init(clock: clock, onEvent: { event in logger.notice("refresh-token store", metadata: ["event": .string("\(event)")]) }))
        clients = try ReloadingClientRegistry(store: clientStore) { message in logger.error("\(message)") }
        let store = refreshTokens
        endpoint = TokenEndpoint(
            clients: { [clients] in clients.current() },
            handlers: [
                .clientCredentials: ClientCredentialsGrant(),
                .password: PasswordGrant(users: { try UserStore(dataPath: configuration.dataPath).users() }, store: store, clock: clock),
                .refreshToken: RefreshTokenGrant(store: store) { clientID, familyID in
                    logger.warning("refresh token reuse: family revoked (RFC 9700 §4.14.2)", metadata: ["client_id": .string(clientID), "family": .string(familyID)])
                },
            ],
            minter: AccessTokenMinter(issuer: configuration.issuerURL, keys: keys, clock: clock))
    }

    /// Flushes and closes the refresh-token store (its lock is released).
    public func close() {
        refreshTokens.close()
    }
}
