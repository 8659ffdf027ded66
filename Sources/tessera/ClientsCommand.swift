import ArgumentParser
import Foundation
import TesseraIssuer

func clientCall<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as OAuthError { throw CLIError(error.logMessage) } catch let error as RegistrationError {
        throw CLIError(error.message)
    } catch let error as KeyStoreError { throw CLIError(Hint.message(error)) }
}

/// Prints rows under a header, each column as wide as its widest cell (two spaces between columns).
func printTable(_ header: [String], _ rows: [[String]]) {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    for row in all {
        let cells = row.indices.map { $0 == row.count - 1 ? row[$0] : row[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
        print(cells.joined(separator: "  "))
    }
}

func printJSON(_ object: Any) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    print(String(decoding: data, as: UTF8.self))
}

struct ClientsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clients",
        abstract: "Register and manage OAuth clients (DATA/clients.json, or the --database; secrets stored only as SHA-256).",
        subcommands: [Add.self, List.self, Remove.self, RotateSecret.self]
    )

    struct DataOptions: ParsableArguments {
        @Option(help: "The data folder.") var data = StoreCommand.defaultData
        @OptionGroup var database: DatabaseOption
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a client; a confidential client's secret is printed once and never stored.",
            discussion: "Without --grant: client_credentials for a confidential client, authorization_code and refresh_token for a public one."
        )

        @OptionGroup var options: DataOptions
        @OptionGroup var operand: ClientIDOperand
        @Flag(name: .customLong("public"), help: "A public client (no secret: native or browser apps).") var isPublic = false
        @Option(name: .customLong("grant"), help: "An allowed grant type (repeatable).") var grants: [String] = []
        @Option(name: .customLong("scope"), help: "An allowed scope (repeatable).") var scopes: [String] = []
        @Option(name: .customLong("default-scope"), help: "A scope granted when the request names none (repeatable; default: all allowed).")
        var defaultScopes: [String] = []
        @Option(help: "The aud of the client's access tokens: the resource server's identifier.") var audience = "api"
        @Option(name: .customLong("redirect-uri"), help: "A redirect URI (repeatable; needed for authorization_code).") var redirectURIs: [String] =
            []
        @Option(name: .customLong("access-token-lifetime"), help: "Seconds.") var accessTokenLifetime = 600
        @Option(name: .customLong("refresh-lifetime"), help: "Absolute refresh-token family lifetime, seconds.") var refreshLifetime = 30 * 86_400
        @Option(name: .customLong("refresh-idle"), help: "Idle refresh-token lifetime, seconds.") var refreshIdle = 7 * 86_400
        @Option(name: .customLong("retry-window"), help: "Seconds a retried refresh returns the same successor (0–60).") var retryWindow = 0
        @Flag(
            name: .customLong("allow-plain-pkce"),
            help: "Accept code_challenge_method=plain from this client (refused otherwise; S256 is always accepted).")
        var allowPlainPKCE = false
        @Option(
            name: .customLong("id-token-alg"),
            help: "OpenID Connect: the alg of this client's ID tokens (default RS256; ES256, PS256 … need an active key of that alg).")
        var idTokenAlgorithm: String?
        @Option(
            name: .customLong("post-logout-redirect-uri"),
            help: "OpenID Connect: where /logout may send the browser afterwards (repeatable; exact match).")
        var postLogoutRedirectURIs: [String] = []
        @Flag(help: "Print {client_id, client_secret} as JSON.") var json = false

        func run() async throws {
            let id = try operand.value()
            let secret = isPublic ? nil : try Client.generateSecret()
            let grantTypes =
                grants.isEmpty ? (isPublic ? [GrantType.authorizationCode, .refreshToken] : [.clientCredentials]) : grants.map(GrantType.init)
            let client = Client(
                id: id, type: isPublic ? .public : .confidential, secretDigest: secret.map(Client.digest(ofSecret:)),
                grants: grantTypes, scopes: scopes, defaultScopes: defaultScopes.isEmpty ? scopes : defaultScopes,
                audience: audience, accessTokenLifetime: accessTokenLifetime,
                refreshTokens: RefreshTokenPolicy(absoluteLifetime: refreshLifetime, idleLifetime: refreshIdle, retryWindow: retryWindow),
                redirectURIs: redirectURIs, pkcePlainAllowed: allowPlainPKCE ? true : nil, idTokenAlgorithm: idTokenAlgorithm,
                postLogoutRedirectURIs: postLogoutRedirectURIs.isEmpty ? nil : postLogoutRedirectURIs, created: commandNow())
            try await options.withState { state in
                do { try await state.clients.add(client) } catch let error as RegistrationError where error.code == .clientExists {
                    throw CLIError("client \(id) already exists; `tessera clients rotate-secret \(id)` issues a new secret")
                }
            }
            if json {
                var object: [String: Any] = ["client_id": id]
                if let secret { object["client_secret"] = secret }
                try printJSON(object)
            } else {
                print("client_id: \(id)")
                if let secret {
                    print("client_secret: \(secret)")
                    printError("the secret is shown once: Tessera keeps only its SHA-256")
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List registered clients (never their secrets).")

        @OptionGroup var options: DataOptions
        @Flag(help: "Print as JSON.") var json = false

        func run() async throws {
            let registry = try await options.withState { state in try await state.clients.read() }
            if json {
                try printJSON(
                    registry.clients.map { client -> [String: Any] in
                        var object: [String: Any] = [
                            "client_id": client.id, "type": client.type.rawValue, "grants": client.grants.map(\.rawValue), "scopes": client.scopes,
                            "default_scopes": client.defaultScopes, "audience": client.audience, "access_token_lifetime": client.accessTokenLifetime,
                            "redirect_uris": client.redirectURIs, "id_token_signed_response_alg": client.idTokenSigningAlgorithm.name,
                        ]
                        if let uris = client.postLogoutRedirectURIs { object["post_logout_redirect_uris"] = uris }
                        return object
                    })
                return
            }
            guard !registry.clients.isEmpty else { return printError("no clients; `tessera clients add ID` registers one") }
            printTable(
                ["CLIENT_ID", "TYPE", "GRANTS", "SCOPES", "AUDIENCE"],
                registry.clients.map {
                    [$0.id, $0.type.rawValue, $0.grants.map(\.rawValue).joined(separator: ","), $0.scopes.joined(separator: " "), $0.audience]
                })
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a client (its refresh tokens: `tessera store revoke --client ID`).")

        @OptionGroup var options: DataOptions
        @OptionGroup var operand: ClientIDOperand

        func run() async throws {
            let id = try operand.value()
            try await options.withState { state in
                try await state.clients.update { registry in
                    guard registry.client(id) != nil else { throw CLIError("no client \(id); `tessera clients list` shows them") }
                    registry.clients.removeAll { $0.id.sameBytes(as: id) }
                }
                // A client registered later under the same id must ask users again.
                try await state.consents.forget(username: nil, clientID: id)
            }
            print("removed \(id)")
        }
    }

    struct RotateSecret: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-secret",
            abstract: "Replace a confidential client's secret; the old one stops working at once."
        )

        @OptionGroup var options: DataOptions
        @OptionGroup var operand: ClientIDOperand
        @Flag(help: "Print {client_id, client_secret} as JSON.") var json = false

        func run() async throws {
            let id = try operand.value()
            let secret = try Client.generateSecret()
            try await options.withState { state in
                try await state.clients.update { registry in
                    guard let index = registry.clients.firstIndex(where: { $0.id.sameBytes(as: id) }) else { throw CLIError("no client \(id)") }
                    guard registry.clients[index].type == .confidential else { throw CLIError("\(id) is a public client: it has no secret") }
                    registry.clients[index].secretDigest = Client.digest(ofSecret: secret)
                }
            }
            if json { try printJSON(["client_id": id, "client_secret": secret]) } else { print("client_secret: \(secret)") }
        }
    }
}
