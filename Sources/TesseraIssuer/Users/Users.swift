import Foundation
import TesseraJOSE

/// A resource owner who can sign in (password grant now, the authorization-code login page next).
public struct User: Codable, Sendable, Equatable {
    public var username: String
    /// scrypt (RFC 7914): `scrypt$<logN>$<r>$<p>$<salt b64url>$<hash b64url>`.
    public var password: String
    public var created: Date

    enum CodingKeys: String, CodingKey { case username, password = "password_scrypt", created }
}

/// `users.json` in the data folder: usernames and scrypt hashes, 0600, changed under `.users.lock`.
public struct UserStore: Sendable {
    public let dataPath: String
    public static let fileName = "users.json"

    struct Registry: Codable, Equatable {
        var version = 1
        var users: [User] = []
    }

    private let document: JSONDocument<Registry>

    public init(dataPath: String) {
        self.dataPath = dataPath
        document = JSONDocument(folder: dataPath, name: Self.fileName, lockName: ".users.lock", what: "the user registry",
                                empty: { Registry() })
    }

    /// N = 2^15, r = 8, p = 1: 32 MiB and tens of milliseconds per check, twice the cost RFC 7914 §2
    /// gives for interactive logins; online guessing is further limited by throttling at the endpoint.
    static let logN = 15, r = 8, p = 1

    public func users() throws -> [User] { try document.read().users }

    public func add(_ username: String, password: String, now: Date) throws {
        guard Self.isValidUsername(username) else {
            throw OAuthError(.invalidRequest, "a username is 1 to 255 characters without spaces, control characters or ':'")
        }
        guard (8...1_024).contains(password.utf8.count) else { throw OAuthError(.invalidRequest, "a password is 8 to 1,024 bytes") }
        // THREATS B13: a client's own tokens carry sub = client_id; a user of the same name would be confusable.
        guard try ClientStore(dataPath: dataPath).read().client(username) == nil else {
            throw OAuthError(.invalidRequest, "\(username) is a client_id: a user of the same name could not be told apart from the client's own tokens (sub)")
        }
        let hash = try Self.hash(password)
        try document.update { registry in
            guard !registry.users.contains(where: { $0.username == username }) else { throw OAuthError(.invalidRequest, "user \(username) already exists") }
            registry.users.append(User(username: username, password: hash, created: now))
        }
    }

    public func remove(_ username: String) throws -> Bool {
        try document.update { registry in
            let before = registry.users.count
            registry.users.removeAll { $0.username == username }
            return registry.users.count != before
        }
    }

    /// Checks a password; the same work is done for unknown users, so timing does not reveal them.
    public static func verify(_ password: String, for user: User?) -> Bool {
        let stored = user?.password ?? dummyHash
        let parts = stored.split(separator: "$").map(String.init)
        guard parts.count == 6, parts[0] == "scrypt", let logN = Int(parts[1]), let r = Int(parts[2]), let p = Int(parts[3]),
              let salt = try? Base64URL.decode(parts[4]), let expected = try? Base64URL.decode(parts[5]),
              let computed = try? PasswordHashing.scrypt(password: Array(password.utf8), salt: salt, logN: logN, r: r, p: p, length: expected.count)
        else { return false }
        return ConstantTime.equals(computed, expected) && user != nil
    }

    static func hash(_ password: String) throws -> String {
        let salt = try SecureRandom.bytes(count: 16)
        let hash = try PasswordHashing.scrypt(password: Array(password.utf8), salt: salt, logN: logN, r: r, p: p)
        return "scrypt$\(logN)$\(r)$\(p)$\(Base64URL.encode(salt))$\(Base64URL.encode(hash))"
    }

    static let dummyHash = (try? hash("tessera-dummy-password")) ?? ""

    static func isValidUsername(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 255 && !name.contains(":") && name.unicodeScalars.allSatisfy { !$0.properties.isWhitespace && $0.value >= 0x20 && $0.value != 0x7F }
    }
}

/// RFC 6749 §4.3, off unless a client is registered with it (RFC 9700 §2.4: "MUST NOT be used"; kept for
/// migrations). A successful sign-in starts a refresh-token family when the client may refresh.
public struct PasswordGrant: GrantHandler {
    public let users: @Sendable () throws -> [User]
    public let store: any RefreshTokenStore
    public let clock: WallClock

    public init(users: @escaping @Sendable () throws -> [User], store: any RefreshTokenStore, clock: WallClock = .system) {
        self.users = users
        self.store = store
        self.clock = clock
    }

    public func grant(_ request: TokenRequest, client: Client) async throws -> Grant {
        let username = try request.required("username"), password = try request.required("password")
        let scope = try TokenEndpoint.resolveScope(try request.scope(), for: client)
        let user = try users().first { $0.username == username }
        guard password.utf8.count <= 1_024, UserStore.verify(password, for: user), let user else {
            throw OAuthError(.invalidGrant, "the username or password is wrong", log: user == nil ? "unknown user" : "wrong password for \(username)")
        }
        let now = clock.now()
        var grant = Grant(subject: user.username, scope: scope, authTime: now)
        if client.allows(.refreshToken) {
            do {
                let issued = try await store.issue(NewRefreshTokenFamily(
                    clientID: client.id, subject: user.username, scope: scope, authTime: now, policy: client.refreshTokens))
                grant.refreshToken = issued.token
                grant.familyID = issued.record.familyID
            } catch let error as RefreshTokenStoreError {
                throw OAuthError(error.code == .unavailable ? .temporarilyUnavailable : .invalidRequest, "the refresh token could not be stored", log: error.message)
            }
        }
        return grant
    }
}
