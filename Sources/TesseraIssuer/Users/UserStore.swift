public import Foundation
import TesseraJOSE

/// A resource owner who can sign in (the `/authorize` sign-in page, and the legacy password grant).
public struct User: Codable, Sendable, Equatable {
    public var username: String
    /// The password hash: scrypt (RFC 7914) `scrypt$<logN>$<r>$<p>$<salt b64url>$<hash b64url>` for passwords
    /// set here, or PBKDF2-HMAC-SHA-256 in Django's format `pbkdf2_sha256$<iterations>$<salt>$<hash base64>`
    /// for hashes imported from another system.
    public var password: String
    public var created: Date

    public init(username: String, password: String, created: Date) {
        self.username = username
        self.password = password
        self.created = created
    }

    enum CodingKeys: String, CodingKey {
        case username
        case password = "password_hash"
        case created
    }
    /// Files written before PBKDF2 imports existed name the member `password_scrypt`.
    enum LegacyKeys: String, CodingKey { case password = "password_scrypt" }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        username = try container.decode(String.self, forKey: .username)
        created = try container.decode(Date.self, forKey: .created)
        if let hash = try container.decodeIfPresent(String.self, forKey: .password) {
            password = hash
        } else {
            password = try decoder.container(keyedBy: LegacyKeys.self).decode(String.self, forKey: .password)
        }
    }
}

extension [User] {
    /// The user `username` names, compared byte for byte (never by Unicode equivalence).
    public func named(_ username: String) -> User? { first { $0.username.sameBytes(as: username) } }
}

/// `users.json` in the data folder: usernames and scrypt hashes, 0600, changed under `.users.lock`.
public struct UserStore: Sendable {
    public let dataPath: String
    public static let fileName = "users.json"

    struct Registry: Codable, Equatable {
        var version = 1
        var users: [User] = []
    }

    let document: JSONDocument<Registry>

    public init(dataPath: String) {
        self.dataPath = dataPath
        document = JSONDocument(folder: dataPath, name: Self.fileName, what: "the user registry", sharedLock: JSONDocument<Registry>.namesLock) {
            Registry()
        }
    }

    /// N = 2^15, r = 8, p = 1: 32 MiB and tens of milliseconds per check, twice the cost RFC 7914 §2
    /// gives for interactive logins; online guessing is further limited by throttling at the endpoint.
    static let logN = 15, r = 8, p = 1

    public func users() throws -> [User] { try document.read().users }

    public func add(_ username: String, password: String, now: Date) throws {
        // The name's problems first: "already exists" is the answer to give, not a complaint about the password.
        try checkNewUsername(username)
        guard (8...1_024).contains(password.utf8.count) else { throw RegistrationError(.invalidPassword, "a password is 8 to 1,024 bytes") }
        try insert(username, hash: try Self.hash(password), now: now)
    }

    /// Adds a user with a hash made elsewhere (a migration): scrypt as written here, or Django's
    /// `pbkdf2_sha256` with at least `minimumPBKDF2Iterations` iterations.
    public func add(_ username: String, passwordHash hash: String, now: Date) throws {
        try checkNewUsername(username)
        guard PasswordHash(hash) != nil else {
            throw RegistrationError(
                .invalidPasswordHash,
                "the hash must be scrypt$logN$r$p$salt$hash or pbkdf2_sha256$iterations$salt$hash with at least \(PasswordHash.minimumPBKDF2Iterations) iterations"
            )
        }
        try insert(username, hash: hash, now: now)
    }

    /// Writes the user, checking under the lock that the name is still free (the checks above ran without it).
    /// The lock is the one `clients add` takes, so a client of the same name cannot appear meanwhile.
    private func insert(_ username: String, hash: String, now: Date) throws {
        try document.update { registry in
            guard registry.users.named(username) == nil else { throw Self.exists(username) }
            guard try ClientStore(dataPath: dataPath).read().client(username) == nil else { throw Self.isClient(username) }
            registry.users.append(User(username: username, password: hash, created: now))
        }
    }

    /// A valid name, not taken by a user or a client (checked again under the lock when the user is written).
    private func checkNewUsername(_ username: String) throws {
        guard Self.isValidUsername(username) else {
            throw RegistrationError(
                .invalidUsername,
                "a username is 1 to 255 bytes of visible characters: no space, control, zero-width or bidirectional character, and none of : \" \\ < >"
            )
        }
        guard try users().named(username) == nil else { throw Self.exists(username) }
        // THREATS B13: a client's own tokens carry sub = client_id; a user of the same name would be confusable.
        guard try ClientStore(dataPath: dataPath).read().client(username) == nil else { throw Self.isClient(username) }
    }

    private static func isClient(_ username: String) -> RegistrationError {
        RegistrationError(
            .nameTaken, "\(username) is a client_id: a user of the same name could not be told apart from the client's own tokens (sub)")
    }

    private static func exists(_ username: String) -> RegistrationError {
        RegistrationError(.userExists, "user \(username) already exists")
    }

    /// Removes a user and the consents they gave (a new user of the same name starts from none).
    public func remove(_ username: String) throws -> Bool {
        let removed = try document.update { registry in
            let before = registry.users.count
            registry.users.removeAll { $0.username.sameBytes(as: username) }
            return registry.users.count != before
        }
        if removed { try ConsentStore(dataPath: dataPath).forget(username: username) }
        return removed
    }

    /// Checks a password on the calling thread, at the same cost for every user of `users` (the CLI and
    /// tests; the server checks on `PasswordChecker`'s threads).
    public static func verify(_ password: String, for user: User?, among users: [User] = []) -> Bool {
        PasswordChecker.verify(password, for: user, pbkdf2Ceiling: PasswordChecker.pbkdf2Ceiling(of: users))
    }

    static func hash(_ password: String) throws -> String {
        let salt = try SecureRandom.bytes(count: 16)
        let hash = try PasswordHashing.scrypt(password: Array(password.utf8), salt: salt, logN: logN, r: r, p: p)
        return "scrypt$\(logN)$\(r)$\(p)$\(Base64URL.encode(salt))$\(Base64URL.encode(hash))"
    }

    static let dummyHash = (try? hash("tessera-dummy-password")) ?? ""

    /// 1 to 255 bytes of visible characters: no space or other separator, no control or format character
    /// (zero-width characters, bidirectional overrides), no private-use or unassigned code point, and none of
    /// `:` (Basic authentication), `"`, `\`, `<`, `>` (quoted or markup contexts). A name must read as what it is.
    static func isValidUsername(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 255
            && name.unicodeScalars.allSatisfy { scalar in
                switch scalar.properties.generalCategory {
                case .control, .format, .privateUse, .surrogate, .unassigned, .spaceSeparator, .lineSeparator, .paragraphSeparator: false
                default: !":\"\\<>".unicodeScalars.contains(scalar)
                }
            }
    }
}
