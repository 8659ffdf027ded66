public import Foundation
public import TesseraJOSE

/// Where refresh-token families live: the one stateful part of the token service.
///
/// Every implementation keeps only digests of tokens, never a token, and offers one atomic rotation
/// (`rotate(_:clientID:scope:)`) in which presenting a token that was already rotated away revokes its
/// whole family (RFC 9700 §4.14.2). A method returns only once its effect is durable: for the file store,
/// once the record is on disk and fsynced. `TesseraIssuer` ships `FileRefreshTokenStore` and
/// `InMemoryRefreshTokenStore`; a database backend conforms to the same protocol and passes the same
/// conformance suite.
public protocol RefreshTokenStore: Sendable {
    /// Starts a new family (after an authorization-code or password grant) and returns its first token.
    func issue(_ family: NewRefreshTokenFamily) async throws -> IssuedRefreshToken

    /// The atomic rotation: `token` is live → it dies and a successor is issued in the same family;
    /// it was rotated away → the family is revoked and `RefreshTokenStoreError.Code.reuseDetected` thrown
    /// (unless it is a retry inside the client's retry window, which returns the same successor again);
    /// unknown, expired, revoked, or another client's → a plain failure that changes nothing.
    ///
    /// `scope` narrows the scope granted to the access token issued with this rotation; `nil` grants the
    /// family's whole scope. The successor refresh token keeps the family's scope (RFC 6749 §6).
    func rotate(_ token: RefreshToken, clientID: String, scope: [String]?) async throws -> RefreshTokenRotation

    /// What the store knows about `token` without changing anything (for introspection); `nil` when the
    /// token is unknown, expired, revoked or malformed.
    func record(for token: RefreshToken) async throws -> RefreshTokenRecord?

    /// Whether the family with this ID (`RefreshTokenRecord.familyID`) can still be used: introspection
    /// reports access tokens issued from a revoked family as inactive.
    func isFamilyLive(_ familyID: String) async throws -> Bool

    /// Revokes the family `token` belongs to (RFC 7009). `clientID`, when given, must own the family.
    /// Returns false when there was nothing live to revoke.
    @discardableResult
    func revokeFamily(of token: RefreshToken, clientID: String?) async throws -> Bool

    /// Revokes a family by its ID (`RefreshTokenRecord.familyID`): a replayed authorization code revokes
    /// what its first exchange issued. Returns false when there was nothing live to revoke.
    @discardableResult
    func revokeFamily(withID familyID: String) async throws -> Bool

    /// Revokes every family issued to a client; returns how many.
    @discardableResult
    func revokeFamilies(ofClient clientID: String) async throws -> Int

    /// Revokes every family of a subject (e.g. password change, account deletion); returns how many.
    @discardableResult
    func revokeFamilies(ofSubject subject: String) async throws -> Int

    /// Revokes every family (key compromise, or after restoring the store from a backup); returns how many.
    @discardableResult
    func revokeAllFamilies() async throws -> Int

    /// Forgets families that can no longer be used (expired or revoked); returns how many were dropped.
    @discardableResult
    func forgetExpired() async throws -> Int

    /// Counts for monitoring.
    func statistics() async -> RefreshTokenStoreStatistics
}

/// Lifetimes of a client's refresh-token families.
public struct RefreshTokenPolicy: Sendable, Equatable {
    /// The longest a family lives, however often it rotates (default 30 days).
    public var absoluteLifetime: Int
    /// How long a token stays usable without being rotated (default 7 days).
    public var idleLifetime: Int
    /// Seconds after a rotation during which presenting the rotated token again returns the same
    /// successor instead of counting as reuse (default 0: off; at most `maximumRetryWindow`).
    public var retryWindow: Int

    public static let maximumRetryWindow = 60
    public static let standard = RefreshTokenPolicy()

    public init(absoluteLifetime: Int = 30 * 86_400, idleLifetime: Int = 7 * 86_400, retryWindow: Int = 0) {
        self.absoluteLifetime = absoluteLifetime
        self.idleLifetime = idleLifetime
        self.retryWindow = retryWindow
    }

    func validated() throws -> RefreshTokenPolicy {
        guard absoluteLifetime > 0, absoluteLifetime <= 10 * 366 * 86_400 else {
            throw RefreshTokenStoreError(.invalidRequest, "absoluteLifetime must be between 1 second and 10 years")
        }
        guard idleLifetime > 0, idleLifetime <= absoluteLifetime else {
            throw RefreshTokenStoreError(.invalidRequest, "idleLifetime must be positive and at most absoluteLifetime")
        }
        guard (0...Self.maximumRetryWindow).contains(retryWindow) else {
            throw RefreshTokenStoreError(.invalidRequest, "retryWindow must be between 0 and \(Self.maximumRetryWindow) seconds")
        }
        return self
    }
}

/// What a grant hands the store to start a family.
public struct NewRefreshTokenFamily: Sendable {
    public var clientID: String
    public var subject: String
    /// The scope the resource owner granted; the family keeps it for its whole life.
    public var scope: [String]
    /// When the resource owner authenticated.
    public var authTime: Date
    public var policy: RefreshTokenPolicy
    /// What the issuer keeps with the grant beyond the store's own fields, opaque to the store (an OpenID
    /// Connect grant's sign-in session and claims request: `OpenIDGrant`); empty for none.
    public var context: String

    public init(
        clientID: String, subject: String, scope: [String], authTime: Date, policy: RefreshTokenPolicy = .standard, context: String = ""
    ) {
        self.clientID = clientID
        self.subject = subject
        self.scope = scope
        self.authTime = authTime
        self.policy = policy
        self.context = context
    }

    /// Bounds on what a store accepts, so one request cannot bloat the store or its records.
    public static let maximumClientIDLength = 255
    public static let maximumSubjectLength = 1_024
    public static let maximumScopeLength = 4_096
    public static let maximumContextLength = 1_024
}

/// What the store knows about one token. Never carries the token itself.
public struct RefreshTokenRecord: Sendable, Equatable {
    public enum State: String, Sendable {
        /// The family's current token: usable once.
        case live
        /// An earlier token of a live family: presenting it again is reuse.
        case rotated
    }

    /// The digest of the family's identifier, in hex: safe to log, the same for every token of the family.
    public var familyID: String
    public var clientID: String
    public var subject: String
    public var scope: [String]
    public var authTime: Date
    public var issuedAt: Date
    public var expiresAt: Date
    public var familyExpiresAt: Date
    public var state: State
    /// `NewRefreshTokenFamily.context`, as issued.
    public var context = ""
}

/// A token the store just minted, and its record. Hand `token` to the client; log only the record.
public struct IssuedRefreshToken: Sendable {
    public let token: RefreshToken
    public let record: RefreshTokenRecord
}

/// The outcome of a successful rotation.
public struct RefreshTokenRotation: Sendable {
    /// The successor to return to the client.
    public let successor: IssuedRefreshToken
    /// The scope to grant the access token issued alongside (the requested subset, or the whole family scope).
    public let grantedScope: [String]
    /// True when this was a retry inside the client's retry window: the same successor as before.
    public let isRetry: Bool
}

/// Counts for monitoring and the benchmark.
public struct RefreshTokenStoreStatistics: Sendable, Equatable {
    /// Families that can still rotate (or expired, until forgotten).
    public var families: Int
    /// Revoked families kept until they would have expired, so a late replay is still seen as reuse.
    public var revokedFamilies: Int
    public var retryRecords: Int
    public var logBytes: Int
    public var generation: Int

    public init(families: Int, revokedFamilies: Int = 0, retryRecords: Int = 0, logBytes: Int = 0, generation: Int = 0) {
        self.families = families
        self.revokedFamilies = revokedFamilies
        self.retryRecords = retryRecords
        self.logBytes = logBytes
        self.generation = generation
    }
}

/// The one error type of the refresh-token stores. Messages never carry a token.
public struct RefreshTokenStoreError: CodedError {
    public typealias Code = ErrorCode<RefreshTokenStoreError>

    public let code: Code
    /// For logs: which check failed, which file and offset. Never a token.
    public let message: String
    /// The hex family ID, set for `reuseDetected` (a security event worth an alert).
    public let familyID: String?

    public init(_ code: Code, _ message: String, familyID: String? = nil) {
        (self.code, self.message, self.familyID) = (code, message, familyID)
    }
}

/// The codes of `RefreshTokenStoreError`.
extension ErrorCode where Domain == RefreshTokenStoreError {
    /// Not a Tessera refresh token (wrong prefix, length or encoding).
    public static var malformedToken: Self { Self("malformed_token") }
    /// No family has this token (never issued, forged, or forgotten after it expired).
    public static var unknownToken: Self { Self("unknown_token") }
    /// The family was revoked (RFC 7009 request, reuse, or an operator).
    public static var revoked: Self { Self("revoked") }
    /// The family passed its idle or absolute lifetime.
    public static var expired: Self { Self("expired") }
    /// The token belongs to another client (RFC 6749 §6: bound to the client it was issued to).
    public static var clientMismatch: Self { Self("client_mismatch") }
    /// A token that was already rotated away was presented: its family is now revoked (RFC 9700 §4.14.2).
    public static var reuseDetected: Self { Self("reuse_detected") }
    /// The requested scope is not within the family's scope (RFC 6749 §6).
    public static var invalidScope: Self { Self("invalid_scope") }
    /// A bad argument (policy out of range, field too long or empty).
    public static var invalidRequest: Self { Self("invalid_request") }
    /// The store cannot accept writes: an I/O error (fsync, disk full) made it read-only until restart.
    public static var unavailable: Self { Self("store_unavailable") }
    /// Another process holds the store's lock.
    public static var locked: Self { Self("store_locked") }
    /// A file of the store is damaged somewhere other than its torn tail.
    public static var corrupt: Self { Self("store_corrupt") }
    /// The store's folder or files cannot be used (permissions, symlinks, not a directory, ...).
    public static var badDirectory: Self { Self("store_bad_directory") }
}

extension RefreshTokenStoreError {
    /// The store's reading of a file-layer failure: an unusable folder, another process's lock, or I/O.
    init(_ error: FileError) {
        switch error.code {
        case .locked: self.init(.locked, error.message + " (one process per store)")
        case .unsafe: self.init(.badDirectory, error.message)
        default: self.init(.unavailable, error.message)
        }
    }
}

/// Runs file-layer work for the store, its failures reported as the store's own errors.
func storeFiles<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as FileError { throw RefreshTokenStoreError(error) }
}
