import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import TesseraIssuer
import TesseraJOSE
import TesseraTestSupport
import TesseraVerifier
import Testing

@testable import TesseraServer

/// A token service on fresh folders, with a confidential client `svc` and a public client `app`.
struct ServerFixture {
    let folder: TemporaryDirectory
    let service: TokenService
    let secret: String

    init(
        throttle: FailureThrottle = FailureThrottle(), clock: WallClock = .system, clients extra: [Client] = [],
        issuer: String = "http://127.0.0.1:8080", passwordChecker: PasswordChecker = .shared
    ) throws {
        folder = try TemporaryDirectory("tessera-server")
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.issuer = issuer
        configuration.keysPath = folder.appending("keys")
        configuration.dataPath = folder.appending("data")
        configuration.createDemoClient = false
        configuration.metricsAddress = nil  // many fixtures run at once; /metrics is tested on `ServeProcess`
        let secret = try Client.generateSecret()
        self.secret = secret
        try ClientStore(dataPath: configuration.dataPath).update { registry in
            registry.clients =
                [
                    Client(
                        id: "svc", type: .confidential, secretDigest: Client.digest(ofSecret: secret), grants: [.clientCredentials, .refreshToken],
                        scopes: ["read", "write"], defaultScopes: ["read"], audience: "api", created: Date()),
                    Client(
                        id: "app", type: .public, secretDigest: nil, grants: [.authorizationCode, .refreshToken], scopes: ["read"],
                        defaultScopes: ["read"], audience: "api", redirectURIs: ["https://app.example/cb"], created: Date()),
                ] + extra
        }
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        service = try TokenService(configuration: configuration, logger: logger, clock: clock, throttle: throttle, passwordChecker: passwordChecker)
    }

    var basicAuth: String { "Basic " + Data("svc:\(secret)".utf8).base64EncodedString() }

    /// Adds the user `name` (password "correct horse battery"); returns it with its `sub`.
    @discardableResult
    func addUser(_ name: String = "alice") throws -> User {
        let users = UserStore(dataPath: service.configuration.dataPath)
        try users.add(name, password: "correct horse battery", now: Date())
        return try #require(try users.users().named(name))
    }

    /// Registers the confidential client `legacy` (same secret as `svc`) with `grants`, the password grant
    /// among them; returns its Basic `Authorization` header.
    func addPasswordClient(_ grants: [GrantType]) throws -> String {
        try ClientStore(dataPath: service.configuration.dataPath).update { registry in
            registry.clients.append(
                Client(
                    id: "legacy", type: .confidential, secretDigest: Client.digest(ofSecret: secret), grants: grants, scopes: ["read"],
                    defaultScopes: ["read"], audience: "api", created: Date()))
        }
        return "Basic " + Data("legacy:\(secret)".utf8).base64EncodedString()
    }

    func run(_ mode: TestingSetup = .router, _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let app = buildApplication(service, logger: logger)
        try await onServerThreads { try await app.test(mode) { client in try await body(client) } }
    }

    func close() {
        (service.refreshTokens as? FileRefreshTokenStore)?.close()  // the fixture runs the data folder's backend
        folder.remove()
    }
}

struct Reply: Sendable {
    let status: HTTPResponse.Status
    let headers: HTTPFields
    let body: String
    var json: JSONObject { (try? JSONObject(parsing: body)) ?? JSONObject() }
    var error: String? {
        if case .string(let code)? = json["error"] { return code }
        return nil
    }
    func string(_ name: String) -> String? {
        if case .string(let value)? = json[name] { return value }
        return nil
    }
}

func post(
    _ client: any TestClientProtocol, _ path: String, _ form: String, authorization: String? = nil,
    contentType: String = "application/x-www-form-urlencoded"
) async throws -> Reply {
    var headers: HTTPFields = [.contentType: contentType]
    if let authorization { headers[.authorization] = authorization }
    return try await client.execute(uri: path, method: .post, headers: headers, body: ByteBuffer(string: form)) { response in
        Reply(status: response.status, headers: response.headers, body: String(buffer: response.body))
    }
}

func get(_ client: any TestClientProtocol, _ path: String, headers: HTTPFields = [:]) async throws -> Reply {
    try await client.execute(uri: path, method: .get, headers: headers) { response in
        Reply(status: response.status, headers: response.headers, body: String(buffer: response.body))
    }
}
