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
    /// OpenID Connect's `sub` (Core §2) and the `sub` of the user's access tokens: 128 random bits,
    /// assigned once and never reused, so a user removed and added again is someone else to every app.
    /// (Files written before OpenID Connect have none: `UserStore.users()` assigns them.)
    public var subject: String
    /// Standard claims (Core §5.1) released by scope at UserInfo, or by the `claims` request parameter.
    public var claims: [String: ClaimValue]

    public init(username: String, password: String, created: Date, subject: String, claims: [String: ClaimValue] = [:]) {
        self.username = username
        self.password = password
        self.created = created
        self.subject = subject
        self.claims = claims
    }

    enum CodingKeys: String, CodingKey {
        case username
        case password = "password_hash"
        case created
        case subject = "sub"
        case claims
    }

    /// The user's claims as released to an app: the stored ones, `preferred_username` defaulting to the
    /// username (Core §5.1: the name the user goes by, not an identifier), restricted to `names`.
    public func releasedClaims(_ names: Set<String>) -> JSONObject {
        var object = JSONObject()
        for name in names.sorted() {
            if let value = claims[name] {
                object[name] = value.json
            } else if name == "preferred_username" {
                object[name] = .string(username)
            }
        }
        return object
    }

    /// A new `sub`: 128 random bits, base64url.
    static func newSubject() throws -> String { Base64URL.encode(try SecureRandom.bytes(count: 16)) }
    /// Files written before PBKDF2 imports existed name the member `password_scrypt`.
    enum LegacyKeys: String, CodingKey { case password = "password_scrypt" }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        username = try container.decode(String.self, forKey: .username)
        created = try container.decode(Date.self, forKey: .created)
        subject = try container.decodeIfPresent(String.self, forKey: .subject) ?? ""
        claims = try container.decodeIfPresent([String: ClaimValue].self, forKey: .claims) ?? [:]
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
    /// The user whose `sub` is `subject`, byte for byte.
    public func withSubject(_ subject: String) -> User? { first { !$0.subject.isEmpty && $0.subject.sameBytes(as: subject) } }
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

    /// The users. A file written before users had a `sub` gets one for each (written back once, under the lock).
    public func users() throws -> [User] {
        let users = try document.read().users
        guard users.contains(where: { $0.subject.isEmpty }) else { return users }
        return try document.update { registry in
            for index in registry.users.indices where registry.users[index].subject.isEmpty {
                registry.users[index].subject = try User.newSubject()
            }
            return registry.users
        }
    }

    /// Adds a user; `claims` are `NAME=VALUE` assignments (`StandardClaims.apply`).
    public func add(_ username: String, password: String, claims: [String] = [], now: Date) throws {
        // The name's problems first: "already exists" is the answer to give, not a complaint about the password.
        try checkNewUsername(username)
        try insert(try Self.newUser(username, password: password, claims: claims, now: now))
    }

    /// A new user's record, checked (name, claims, password) and hashed with scrypt; not stored yet, and
    /// not checked against the names already taken (the store does that under its lock).
    public static func newUser(_ username: String, password: String, claims: [String], now: Date) throws -> User {
        try checkName(username)
        let claims = try Self.claims(claims, now: now)
        guard (8...1_024).contains(password.utf8.count) else { throw RegistrationError(.invalidPassword, "a password is 8 to 1,024 bytes") }
        return User(username: username, password: try hash(password), created: now, subject: try User.newSubject(), claims: claims)
    }

    /// A new user's record with a hash made elsewhere (a migration); see `add(_:passwordHash:claims:now:)`.
    public static func newUser(_ username: String, passwordHash hash: String, claims: [String], now: Date) throws -> User {
        try checkName(username)
        let claims = try Self.claims(claims, now: now)
        guard PasswordHash(hash) != nil else {
            throw RegistrationError(
                .invalidPasswordHash,
                "the hash must be scrypt$logN$r$p$salt$hash or pbkdf2_sha256$iterations$salt$hash with at least \(PasswordHash.minimumPBKDF2Iterations) iterations"
            )
        }
        return User(username: username, password: hash, created: now, subject: try User.newSubject(), claims: claims)
    }

    /// `user` with `assignments` applied; `updated_at` becomes `now` unless set explicitly.
    public static func changing(_ user: User, claims assignments: [String], now: Date) throws -> User {
        var user = user
        for assignment in assignments { try StandardClaims.apply(assignment, to: &user.claims) }
        if !assignments.contains(where: { $0.hasPrefix("updated_at=") }) { user.claims["updated_at"] = .number(Int64(now.timeIntervalSince1970)) }
        return user
    }

    /// Changes a user's claims (`NAME=VALUE`, an empty value removes one); `updated_at` becomes `now`
    /// unless set explicitly. Returns the user as stored.
    @discardableResult
    public func set(_ username: String, claims assignments: [String], now: Date) throws -> User {
        _ = try users()  // every user has a sub before one is changed
        return try document.update { registry in
            guard let index = registry.users.firstIndex(where: { $0.username.sameBytes(as: username) }) else {
                throw RegistrationError(.unknownUser, "no user \(username)")
            }
            registry.users[index] = try Self.changing(registry.users[index], claims: assignments, now: now)
            return registry.users[index]
        }
    }

    private static func claims(_ assignments: [String], now: Date) throws -> [String: ClaimValue] {
        var claims: [String: ClaimValue] = [:]
        for assignment in assignments { try StandardClaims.apply(assignment, to: &claims) }
        if claims["updated_at"] == nil { claims["updated_at"] = .number(Int64(now.timeIntervalSince1970)) }
        return claims
    }

    /// Adds a user with a hash made elsewhere (a migration): scrypt as written here, or Django's
    /// `pbkdf2_sha256` with at least `minimumPBKDF2Iterations` iterations.
    public func add(_ username: String, passwordHash hash: String, claims: [String] = [], now: Date) throws {
        try checkNewUsername(username)
        try insert(try Self.newUser(username, passwordHash: hash, claims: claims, now: now))
    }

    /// Writes the user, checking under the lock that the name is still free (the checks above ran without it).
    /// The lock is the one `clients add` takes, so a client of the same name cannot appear meanwhile.
    private func insert(_ user: User) throws {
        try document.update { registry in
            guard registry.users.named(user.username) == nil else { throw Self.exists(user.username) }
            guard try ClientStore(dataPath: dataPath).read().client(user.username) == nil else { throw Self.isClient(user.username) }
            registry.users.append(user)
        }
    }

    /// A valid name, not taken by a user or a client (checked again under the lock when the user is written).
    private func checkNewUsername(_ username: String) throws {
        try Self.checkName(username)
        guard try users().named(username) == nil else { throw Self.exists(username) }
        // THREATS B13: a client's own tokens carry sub = client_id; a user of the same name would be confusable.
        guard try ClientStore(dataPath: dataPath).read().client(username) == nil else { throw Self.isClient(username) }
    }

    /// Refuses a name that is not a valid username (`isValidUsername`).
    public static func checkName(_ username: String) throws {
        guard isValidUsername(username) else {
            throw RegistrationError(
                .invalidUsername,
                "a username is 1 to 255 bytes of visible characters: no space, control, zero-width or bidirectional character, and none of : \" \\ < >"
            )
        }
    }

    public static func isClient(_ username: String) -> RegistrationError {
        RegistrationError(
            .nameTaken, "\(username) is a client_id: a user of the same name could not be told apart from the client's own tokens (sub)")
    }

    public static func exists(_ username: String) -> RegistrationError {
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

/// `users.json` as a running server reads it on every refresh and UserInfo call: parsed again only when the
/// file changed (it is only ever replaced by rename, so a change is a new inode), one `lstat` otherwise.
public final class CachedUsers: @unchecked Sendable {
    public let store: UserStore
    private let lock = NSLock()
    private var cached: (fingerprint: FileFingerprint, users: [User])?

    public init(store: UserStore) { self.store = store }

    public func users() throws -> [User] {
        // Taken before the read: a change made during it shows as a new fingerprint at the next call.
        let seen = FileFingerprint(path: store.dataPath + "/" + UserStore.fileName)
        if let seen, let hit = lock.withLock({ cached?.fingerprint == seen ? cached?.users : nil }) { return hit }
        let users = try store.users()
        if let seen { lock.withLock { cached = (seen, users) } }
        return users
    }
}
