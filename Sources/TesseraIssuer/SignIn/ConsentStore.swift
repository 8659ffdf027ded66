public import Foundation

/// A user's remembered "allow" for a client: the scopes they agreed to. A later request for these scopes
/// (or fewer) skips the consent page; a request for more shows it again, and `prompt=consent` always does.
public struct Consent: Codable, Sendable, Equatable {
    public var username: String
    public var clientID: String
    public var scopes: [String]
    public var granted: Date

    public init(username: String, clientID: String, scopes: [String], granted: Date) {
        self.username = username
        self.clientID = clientID
        self.scopes = scopes
        self.granted = granted
    }

    enum CodingKeys: String, CodingKey {
        case username
        case clientID = "client_id"
        case scopes, granted
    }
}

/// `consents.json` in the data folder (0600, changed under `.consents.lock`, written with fsync and rename).
/// Removing a user or a client forgets their consents.
public struct ConsentStore: Sendable {
    public static let fileName = "consents.json"

    struct Registry: Codable, Equatable {
        var version = 1
        var consents: [Consent] = []
    }

    private let document: JSONDocument<Registry>

    public init(dataPath: String) {
        document = JSONDocument(folder: dataPath, name: Self.fileName, what: "the consent registry") { Registry() }
    }

    public func consents() throws -> [Consent] { try document.read().consents }

    /// Whether `username` already agreed to give `clientID` every scope in `scope`.
    public func covers(username: String, clientID: String, scope: [String]) throws -> Bool {
        guard let consent = try consents().first(where: { $0.username.sameBytes(as: username) && $0.clientID.sameBytes(as: clientID) }) else {
            return false
        }
        return Set(scope).isSubset(of: Set(consent.scopes))
    }

    /// Remembers the scopes, added to any already remembered for the pair.
    public func remember(username: String, clientID: String, scope: [String], now: Date) throws {
        try document.update { registry in
            if let index = registry.consents.firstIndex(where: { $0.username.sameBytes(as: username) && $0.clientID.sameBytes(as: clientID) }) {
                registry.consents[index].scopes = Array(Set(registry.consents[index].scopes).union(scope)).sorted()
                registry.consents[index].granted = now
            } else {
                registry.consents.append(Consent(username: username, clientID: clientID, scopes: scope.sorted(), granted: now))
            }
        }
    }

    /// Forgets the consents of a user, of a client, or one pair; returns how many were dropped.
    @discardableResult
    public func forget(username: String? = nil, clientID: String? = nil) throws -> Int {
        guard username != nil || clientID != nil else { return 0 }
        return try document.update { registry in
            let before = registry.consents.count
            registry.consents.removeAll { consent in
                (username.map { consent.username.sameBytes(as: $0) } ?? true) && (clientID.map { consent.clientID.sameBytes(as: $0) } ?? true)
            }
            return before - registry.consents.count
        }
    }
}
