import Foundation
import TesseraIssuer
import TesseraPostgres

/// What the `clients`, `users` and `store` commands change: the data folder's files, or, with `--database`
/// (or `TESSERA_DATABASE`), the PostgreSQL database several `tessera serve` share.
struct StateAccess {
    let clients: any ClientRegistryStore
    let users: any UserRegistryStore
    let consents: any ConsentRecords
    let refreshTokens: () throws -> any RefreshTokenStore
    /// Where the change went, for messages.
    let location: String
}

extension ClientsCommand.DataOptions {
    /// Runs `body` on the state `--database` or `--data` names; a database is checked first (reachable, schema
    /// current) and its connections closed after. Errors become messages for the user.
    func withState<T>(_ body: (StateAccess) async throws -> T) async throws -> T {
        guard database.resolved != nil else {
            let files = StateAccess(
                clients: ClientStore(dataPath: data), users: UserStore(dataPath: data), consents: ConsentStore(dataPath: data),
                refreshTokens: { [data] in try FileRefreshTokenStore(directory: StoreCommand.storePath(data)) }, location: "data folder \(data)")
            return try await clientCall { try await body(files) }
        }
        return try await withDatabase(database) { pool in
            try await Schema.check(pool)
            let registries = PostgresRegistries(database: pool)
            let state = StateAccess(
                clients: registries.clients, users: registries.users, consents: PostgresConsents(database: pool),
                refreshTokens: { PostgresRefreshTokenStore(database: pool) }, location: pool.url.description)
            return try await clientCall { try await body(state) }
        }
    }
}

/// `clientCall` for the commands that reach their state asynchronously.
func clientCall<T>(_ body: () async throws -> T) async throws -> T {
    do { return try await body() } catch let error as OAuthError { throw CLIError(error.logMessage) } catch let error as RegistrationError {
        throw CLIError(error.message)
    } catch let error as KeyStoreError { throw CLIError(Hint.message(error)) }
}
