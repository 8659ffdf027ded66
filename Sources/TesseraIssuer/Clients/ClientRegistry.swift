import Foundation
import TesseraJOSE

/// The registered clients: the content of `clients.json` in the data folder (format in `docs/clients.md`).
public struct ClientRegistry: Codable, Sendable, Equatable {
    public var version = 1
    public var clients: [Client]

    public init(clients: [Client] = []) { self.clients = clients }

    public func client(_ id: String) -> Client? { clients.first { $0.id.sameBytes(as: id) } }

    public func validate() throws {
        guard version == 1 else {
            throw RegistrationError(.unsupportedVersion, "clients.json version \(version) is not supported (this build reads 1)")
        }
        var seen = Set<String>()
        for client in clients {
            guard seen.insert(client.id).inserted else { throw RegistrationError(.duplicateClientID, "client_id \(client.id) appears twice") }
            try client.validate()
        }
    }
}

/// `clients.json` in the data folder: read whole (written by rename, so never half), changed under the
/// folder's `.clients.lock`, written 0600 with fsync, rename and folder fsync.
public struct ClientStore: Sendable {
    public let dataPath: String
    public static let fileName = "clients.json"
    private let document: JSONDocument<ClientRegistry>

    public init(dataPath: String) {
        self.dataPath = dataPath
        document = JSONDocument(
            folder: dataPath, name: Self.fileName, what: "the client registry", sharedLock: JSONDocument<ClientRegistry>.namesLock
        ) {
            ClientRegistry()
        }
    }

    /// Registers `client` unless its id is taken by a client or a user, checked under the lock that
    /// `users add` takes too (THREATS B13: a client's own tokens carry sub = client_id).
    public func add(_ client: Client) throws {
        try update { registry in
            guard registry.client(client.id) == nil else { throw Self.exists(client.id) }
            guard try UserStore(dataPath: dataPath).users().named(client.id) == nil else { throw Self.isUser(client.id) }
            registry.clients.append(client)
        }
    }

    public static func exists(_ id: String) -> RegistrationError { RegistrationError(.clientExists, "client \(id) already exists") }

    public static func isUser(_ id: String) -> RegistrationError {
        RegistrationError(.nameTaken, "\(id) is a username: its client_credentials tokens (sub = client_id) would be confusable with the user's")
    }

    /// The registry; empty when there is no file yet.
    public func read() throws -> ClientRegistry {
        let registry = try document.read()
        try registry.validate()
        return registry
    }

    /// Runs `body` under the lock and writes the registry back (validated) if it changed.
    public func update<T>(_ body: (inout ClientRegistry) throws -> T) throws -> T {
        try document.update { registry in
            let result = try body(&registry)
            try registry.validate()
            return result
        }
    }
}
