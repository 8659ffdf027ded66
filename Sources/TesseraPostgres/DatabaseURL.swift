import Foundation
public import TesseraJOSE

/// A `postgres://USER:PASSWORD@HOST:PORT/DB?sslmode=…` address, as libpq spells it (PostgreSQL manual
/// §34.1.1): the forms `tessera serve --database`, `TESSERA_DATABASE` and the config file take.
///
/// Understood parameters: `sslmode` (`disable`, `prefer` — libpq's default —, `require`, `verify-ca`,
/// `verify-full`), `sslrootcert` (a PEM file of trusted roots for the `verify-*` modes), `host` (a Unix
/// socket folder, as in `postgres:///tessera?host=/var/run/postgresql`), `application_name`, and Tessera's
/// own `schema` (the PostgreSQL schema its tables live in, the connections' `search_path`: several
/// deployments on one database). Anything else is refused by name, so a typo is not silently ignored.
/// `description` never shows the password.
public struct DatabaseURL: Sendable, Equatable, CustomStringConvertible {
    public enum TLSMode: String, Sendable, CaseIterable {
        case disable, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    /// The folder of the server's Unix socket (`host=` parameter); nil for TCP.
    public var socketFolder: String?
    public var username: String
    public var password: String?
    public var database: String
    public var tls: TLSMode
    public var rootCertificateFile: String?
    public var applicationName: String
    /// The PostgreSQL schema of Tessera's tables; nil: the server's default (`public`).
    public var schema: String?

    public init(_ text: String) throws {
        guard text.hasPrefix("postgres://") || text.hasPrefix("postgresql://"), let components = URLComponents(string: text) else {
            throw DatabaseError(.badURL, "expected postgres://USER:PASSWORD@HOST:PORT/DATABASE[?sslmode=…]")
        }
        host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "localhost"
        port = components.port ?? 5432
        guard (1...65_535).contains(port) else { throw DatabaseError(.badURL, "the port must be 1 to 65535") }
        username = components.user.flatMap { $0.removingPercentEncoding } ?? ""
        guard !username.isEmpty else { throw DatabaseError(.badURL, "the address names no user (postgres://USER@HOST/DATABASE)") }
        password = components.password.flatMap { $0.removingPercentEncoding }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = path.removingPercentEncoding ?? path
        guard !database.isEmpty, !database.contains("/") else {
            throw DatabaseError(.badURL, "the address names no database (postgres://USER@HOST/DATABASE)")
        }
        tls = .prefer
        applicationName = "tessera"
        for item in components.queryItems ?? [] {
            let value = item.value ?? ""
            switch item.name {
            case "sslmode":
                guard let mode = TLSMode(rawValue: value) else {
                    let modes = TLSMode.allCases.map(\.rawValue).joined(separator: ", ")
                    throw DatabaseError(.badURL, "sslmode must be one of \(modes) (allow is not supported: it would try without TLS first)")
                }
                tls = mode
            case "sslrootcert": rootCertificateFile = value
            case "host":
                guard value.hasPrefix("/") else { throw DatabaseError(.badURL, "host= takes the absolute path of a Unix socket folder") }
                socketFolder = value
            case "application_name": applicationName = value
            case "schema":
                // An identifier, unquoted: it becomes the search_path of every connection.
                guard (1...63).contains(value.utf8.count),
                    value.utf8.allSatisfy({ $0 == 0x5F || (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) }),
                    !(0x30...0x39).contains(value.utf8.first!)
                else { throw DatabaseError(.badURL, "schema= takes a lower-case identifier: letters, digits and _, at most 63") }
                schema = value
            default:
                throw DatabaseError(.badURL, "unknown parameter \(Self.quoted(item.name)) (sslmode, sslrootcert, host, application_name, schema)")
            }
        }
        if rootCertificateFile != nil, tls != .verifyCA, tls != .verifyFull {
            throw DatabaseError(.badURL, "sslrootcert needs sslmode=verify-ca or verify-full")
        }
    }

    /// The Unix socket's path, when the address names a socket folder.
    public var socketPath: String? { socketFolder.map { "\($0)/.s.PGSQL.\(port)" } }

    /// The address with the password replaced: what logs and errors may show.
    public var description: String {
        let parameters = [socketFolder.map { "host=\($0)" }, schema.map { "schema=\($0)" }].compactMap { $0 }
        let secret = password == nil ? "" : ":***"
        return "postgres://\(username)\(secret)@\(host):\(port)/\(database)" + (parameters.isEmpty ? "" : "?" + parameters.joined(separator: "&"))
    }

    /// Printable ASCII only, at most 40 characters: request-derived or mistyped text stays harmless in a message.
    static func quoted(_ text: String) -> String {
        let safe = text.unicodeScalars.prefix(40).map { (0x20...0x7E).contains($0.value) && $0 != "\"" ? Character($0) : "?" }
        return "\"" + String(safe) + "\""
    }
}

/// The one error type of the PostgreSQL backend. Messages never carry a password, a token or a secret.
public struct DatabaseError: CodedError {
    public typealias Code = ErrorCode<DatabaseError>

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) { (self.code, self.message) = (code, message) }
}

/// The codes of `DatabaseError`.
extension ErrorCode where Domain == DatabaseError {
    /// The `--database` address cannot be used.
    public static var badURL: Self { Self("database_bad_url") }
    /// The server cannot be reached, refused the login, or did not answer in time.
    public static var unavailable: Self { Self("database_unavailable") }
    /// The database has no Tessera schema yet (`tessera db migrate`).
    public static var schemaMissing: Self { Self("database_schema_missing") }
    /// The schema is older than this build knows (`tessera db migrate`).
    public static var schemaOutdated: Self { Self("database_schema_outdated") }
    /// The schema is newer than this build knows (a newer tessera migrated it).
    public static var schemaNewer: Self { Self("database_schema_newer") }
}
