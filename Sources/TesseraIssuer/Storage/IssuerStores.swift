public import Foundation

// The issuer's state besides refresh-token families (`RefreshTokenStore`), behind protocols both backends
// implement: the embedded one (files and memory, one `tessera serve`) and PostgreSQL (`TesseraPostgres`,
// several instances on one database). The grants, the flows and the pages see only these.
//
// A backend's failure to reach its storage is an `OAuthError` with `.temporarilyUnavailable`: 503 at the
// token endpoint, a `temporarily_unavailable` redirect from `/authorize`.

/// The registered clients as a running server sees them: a snapshot that follows changes by itself
/// (the file's fingerprint, or the database's change counter), cheap to ask for on every request.
public protocol ClientDirectory: Sendable {
    func current() -> ClientRegistry
}

extension ReloadingClientRegistry: ClientDirectory {}

/// Where the CLI and `tessera serve`'s demo client change the registry: `update` runs its body on the
/// whole registry under a lock that also keeps usernames out (THREATS B13), and writes back what changed.
public protocol ClientRegistryStore: Sendable {
    func read() async throws -> ClientRegistry
    func update<T: Sendable>(_ body: @escaping @Sendable (inout ClientRegistry) throws -> T) async throws -> T
    /// Registers `client` unless its id is taken by a client or a user.
    func add(_ client: Client) async throws
}

extension ClientStore: ClientRegistryStore {}

/// The users, for the CLI: every change checks the client names under the same lock as `ClientRegistryStore`.
public protocol UserRegistryStore: Sendable {
    func users() async throws -> [User]
    func add(_ username: String, password: String, claims: [String], now: Date) async throws
    func add(_ username: String, passwordHash: String, claims: [String], now: Date) async throws
    @discardableResult
    func set(_ username: String, claims: [String], now: Date) async throws -> User
    /// Removes the user and the consents they gave; false when there was none of that name.
    func remove(_ username: String) async throws -> Bool
    /// Replaces the user's hash by `new` (`UserStore.currentHash`), unless it changed since `replacing` was read.
    func replaceHash(_ username: String, with new: String, replacing: String) async throws
}

extension UserStore: UserRegistryStore {}

/// Remembered consent (`Consent`): read on every authorization request, written when a user ticks "remember".
public protocol ConsentRecords: Sendable {
    func consents() async throws -> [Consent]
    func covers(username: String, clientID: String, scope: [String]) async throws -> Bool
    func remember(username: String, clientID: String, scope: [String], now: Date) async throws
    /// Forgets the consents of a user, of a client, or one pair; returns how many were dropped.
    @discardableResult
    func forget(username: String?, clientID: String?) async throws -> Int
}

extension ConsentStore: ConsentRecords {}

/// What redeeming an authorization code found.
public enum AuthorizationCodeRedemption: Sendable {
    case fresh(AuthorizationCodeGrantRecord)
    /// Already used: revoke the family it started (nil while the first redemption has not attached it yet).
    case replayed(familyID: String?)
    case failed(String)
}

/// Authorization codes: single use across every instance that shares the store.
public protocol AuthorizationCodeRecords: Sendable {
    func issue(_ record: AuthorizationCodeGrantRecord) async throws -> String
    /// Atomically takes a code for `clientID`: of two concurrent redemptions exactly one is `fresh`.
    func redeem(_ code: String, clientID: String) async throws -> AuthorizationCodeRedemption
    /// Records the family the redemption started; true when a replay arrived meanwhile and it must be revoked.
    func attach(familyID: String, to code: String) async throws -> Bool
}

/// Browser sessions of the sign-in and consent pages and the authorization requests open in them.
public protocol BrowserSessionRecords: Sendable {
    var policy: SessionPolicy { get }
    /// The session of `cookie` if it is live; nil for a missing, unknown or expired cookie.
    func session(_ cookie: String?) async throws -> BrowserSession?
    /// The session of `cookie`, or a new anonymous one.
    func sessionOrNew(_ cookie: String?) async throws -> BrowserSession
    /// Keeps `request` in the session until sign-in and consent are done; returns it with its handle.
    func open(_ request: AuthorizationRequest, in session: BrowserSession, hintedSubject: String?) async throws -> PendingAuthorization
    /// The open request `handle` of the session, if it has not expired (and, stored elsewhere, still validates).
    func pending(_ handle: String?, in session: BrowserSession) async throws -> PendingAuthorization?
    func close(_ handle: String, in session: BrowserSession) async throws
    /// Records a sign-in: a new cookie and CSRF token (no session fixation); open requests move along.
    func signIn(_ session: BrowserSession, user: User, handle: String) async throws -> BrowserSession
    func end(_ session: BrowserSession) async throws
}

/// What `FailureCounting.check` found: how long to wait, and which counts a success would clear.
public struct FailureCheck: Sendable {
    /// Seconds to wait (rounded up); nil when the request may proceed.
    public let retryAfter: Int?
    /// The keys with a count that the request's success clears (empty: a success writes nothing).
    public let clearable: [FailureThrottle.Key]

    public init(retryAfter: Int?, clearable: [FailureThrottle.Key]) {
        self.retryAfter = retryAfter
        self.clearable = clearable
    }
}

/// Failed-attempt counting (`FailureThrottle` describes the keys and delays), shared by every instance
/// that shares the store, with no write when a request succeeds and had nothing to clear.
public protocol FailureCounting: Sendable {
    func check(_ keys: [FailureThrottle.Key]) async throws -> FailureCheck
    func recordFailure(_ keys: [FailureThrottle.Key]) async throws
    /// The right secret or password: clears what `check` found clearable.
    func clear(after check: FailureCheck) async throws
}

extension FailureThrottle: FailureCounting {
    public func check(_ keys: [Key]) -> FailureCheck {
        FailureCheck(retryAfter: retryAfter(keys), clearable: keys.filter(\.clearedBySuccess))
    }

    public func clear(after check: FailureCheck) { recordSuccess(check.clearable) }
}
