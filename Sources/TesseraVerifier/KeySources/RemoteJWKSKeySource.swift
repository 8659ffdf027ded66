public import Foundation
public import TesseraJOSE

/// Trusted keys from an issuer's JWKS endpoint, cached so that requests almost never wait.
///
/// - Lifetime from `Cache-Control: max-age`, clamped to `policy.minimumLifetime` (10 s, the floor the issuer's
///   key ring also enforces) `… maximumLifetime`;
///   revalidated with `If-None-Match` when the issuer sent an `ETag` (a 304 renews the lifetime).
/// - Refreshed ahead of expiry in the background (at `refreshAhead` of the lifetime): the request that
///   notices it does not wait.
/// - An unknown `kid` triggers one refresh, at most once per `unknownKeyCooldown`; during the cooldown
///   such tokens fail at once instead of queueing, so forged kids cannot turn the verifier into a load
///   generator against the issuer — except while a fetch is under way: they join it and see its keys.
/// - Concurrent callers share one fetch (single flight) with a short timeout. A caller that has to wait
///   (the first load, an unknown `kid`) runs the fetch in its own task, so it keeps that task's priority and
///   executor; the others wait for its answer. Only a refresh nobody waits for runs in a task of its own.
/// - If the issuer is unreachable or answers garbage, cached keys keep working for up to
///   `maximumStaleness` past their lifetime (stale-if-error); the outage is logged once. A response that
///   is too large or not a usable JWK Set never evicts good keys.
/// - Only the first load waits (there is nothing to serve before it).
public final class RemoteJWKSKeySource: KeySource, @unchecked Sendable {
    public struct Policy: Sendable {
        public var defaultLifetime: TimeInterval = 300
        /// The issuer's `max-age` is honoured down to this floor (`JWKSCaching.minimumMaxAge`, which the key ring's
        /// manifest also enforces): caching longer than the issuer says would refuse a newly activated key's tokens.
        public var minimumLifetime = TimeInterval(JWKSCaching.minimumMaxAge)
        public var maximumLifetime: TimeInterval = 86_400
        /// Fraction of the lifetime after which a background refresh starts.
        public var refreshAhead: Double = 0.75
        public var unknownKeyCooldown: TimeInterval = 30
        /// How long past their lifetime cached keys still serve while refreshes fail.
        public var maximumStaleness: TimeInterval = 86_400
        /// Pause between background attempts after a failure.
        public var retryInterval: TimeInterval = 5
        public var timeout: TimeInterval = 5
        public var maximumResponseSize = 256 * 1024
        public init() {}
    }

    private enum Location {
        case jwks(URL)
        case discovery(issuer: String, metadata: URL)
    }

    private struct State {
        var keys: VerificationKeySet?
        var etag: String?
        var jwksURL: URL?
        var fetchedAt: Double = 0
        var lifetime: Double = 0
        var lastAttempt: Double?
        var lastUnknownKeyRefresh: Double?
        /// Callers waiting for the fetch under way; nil when none is under way.
        var waiters: [CheckedContinuation<VerificationKeySet, any Error>]?
        /// The last fetch's outcome, for a caller that arrived as it ended.
        var lastOutcome: Result<VerificationKeySet, any Error>?
        var failing = false
    }

    public let policy: Policy
    private let location: Location
    private let allowedAlgorithms: Set<JWSAlgorithm>?
    private let http: any HTTPGetter
    private let logger: KeySourceLogger?
    private let clock: MonotonicClock
    private let state = Locked(State())

    /// Keys from the JWK Set at `jwksURL`.
    public convenience init(
        jwksURL: URL, allowedAlgorithms: Set<JWSAlgorithm>? = nil, policy: Policy = Policy(),
        http: any HTTPGetter = URLSessionHTTPGetter.shared, logger: KeySourceLogger? = nil
    ) {
        self.init(.jwks(jwksURL), allowedAlgorithms, policy, http, logger, .system)
    }

    /// Keys found through the issuer's RFC 8414 metadata (`/.well-known/oauth-authorization-server`
    /// → `jwks_uri`). The metadata's `issuer` must equal `issuer` exactly (RFC 8414 §3.3), and
    /// `jwks_uri` must be https (plain http only on a loopback host).
    public convenience init(
        issuer: String, allowedAlgorithms: Set<JWSAlgorithm>? = nil, policy: Policy = Policy(),
        http: any HTTPGetter = URLSessionHTTPGetter.shared, logger: KeySourceLogger? = nil
    ) throws {
        guard let metadata = Self.metadataURL(forIssuer: issuer) else {
            throw VerifierConfigurationError(.invalidConfiguration, "the issuer is not an http(s) URL without query or fragment")
        }
        self.init(.discovery(issuer: issuer, metadata: metadata), allowedAlgorithms, policy, http, logger, .system)
    }

    convenience init(jwksURL: URL, policy: Policy, http: any HTTPGetter, clock: MonotonicClock, logger: KeySourceLogger? = nil) {
        self.init(.jwks(jwksURL), nil, policy, http, logger, clock)
    }

    private init(
        _ location: Location, _ allowedAlgorithms: Set<JWSAlgorithm>?, _ policy: Policy,
        _ http: any HTTPGetter, _ logger: KeySourceLogger?, _ clock: MonotonicClock
    ) {
        self.location = location
        self.allowedAlgorithms = allowedAlgorithms
        self.policy = policy
        self.http = http
        self.logger = logger
        self.clock = clock
    }

    /// RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path.
    static func metadataURL(forIssuer issuer: String) -> URL? {
        guard var components = URLComponents(string: issuer), let scheme = components.scheme?.lowercased(),
            scheme == "https" || scheme == "http", components.host?.isEmpty == false,
            components.query == nil, components.fragment == nil
        else { return nil }
        var path = components.path
        while path.hasSuffix("/") { path.removeLast() }
        components.path = "/.well-known/oauth-authorization-server" + path
        return components.url
    }

    static func isAcceptableKeyURL(_ url: URL) -> Bool {
        switch url.scheme?.lowercased() {
        case "https": return true
        case "http": return isLoopbackHost(url.host ?? "")
        default: return false
        }
    }

    /// True when no fetch is under way (for tests).
    package var isIdle: Bool { state.withLock { $0.waiters == nil } }

    // MARK: KeySource

    public func currentKeys() async throws -> VerificationKeySet {
        let now = clock.now()
        enum Next {
            case serve(VerificationKeySet)
            case wait, unavailable
        }
        let next: Next = state.withLock { state in
            guard let keys = state.keys else { return .wait }
            let age = now - state.fetchedAt
            if age >= state.lifetime * policy.refreshAhead, state.waiters == nil,
                state.lastAttempt.map({ now - $0 >= policy.retryInterval }) ?? true
            {
                claimFetch(&state)
                Task { [self] in _ = try? await leadFetch() }  // background: this request does not wait
            }
            return age <= state.lifetime + policy.maximumStaleness ? .serve(keys) : .unavailable
        }
        switch next {
        case .serve(let keys): return keys
        case .unavailable:
            throw TokenVerificationError(.keysUnavailable, "the issuer's keys are older than the staleness bound and cannot be refreshed")
        case .wait:
            do {
                return try await sharedFetch()
            } catch {
                throw TokenVerificationError(.keysUnavailable, "the issuer's keys could not be loaded")
            }
        }
    }

    public func keysAfterUnknownKeyID() async -> VerificationKeySet? {
        let now = clock.now()
        let allowed: Bool = state.withLock { state in
            // A fetch under way (the one an unknown kid started, or a refresh) is joined, cooldown or not: the
            // tokens that arrive while it runs are of the same new key, and it costs the issuer nothing more.
            if state.waiters != nil { return true }
            if let last = state.lastUnknownKeyRefresh, now - last < policy.unknownKeyCooldown { return false }
            state.lastUnknownKeyRefresh = now
            return true
        }
        guard allowed else { return nil }
        return try? await sharedFetch()
    }

    /// The one fetch (single flight): joins the fetch under way, or runs one in the calling task and hands
    /// its outcome to everyone who joined meanwhile.
    private func sharedFetch() async throws -> VerificationKeySet {
        let leads: Bool = state.withLock { state in
            guard state.waiters == nil else { return false }
            claimFetch(&state)
            return true
        }
        if leads { return try await leadFetch() }
        return try await withCheckedThrowingContinuation { continuation in
            let ended: Result<VerificationKeySet, any Error>? = state.withLock { state in
                guard state.waiters != nil else { return state.lastOutcome }
                state.waiters!.append(continuation)
                return nil
            }
            // The fetch ended between the two looks at the state: its outcome is this caller's too.
            if let ended { continuation.resume(with: ended) }
        }
    }

    /// Marks a fetch as under way (the caller then runs `leadFetch`). Called with the lock held.
    private func claimFetch(_ state: inout State) {
        state.waiters = []
        state.lastAttempt = clock.now()
    }

    /// Runs the claimed fetch and hands its outcome to every caller that joined it.
    private func leadFetch() async throws -> VerificationKeySet {
        let outcome: Result<VerificationKeySet, any Error>
        do { outcome = .success(try await fetch()) } catch { outcome = .failure(error) }
        let waiters: [CheckedContinuation<VerificationKeySet, any Error>] = state.withLock { state in
            if case .failure(let error) = outcome { recordFailure(error, &state) }
            state.lastOutcome = outcome
            defer { state.waiters = nil }
            return state.waiters ?? []
        }
        for waiter in waiters { waiter.resume(with: outcome) }
        return try outcome.get()
    }

    // MARK: Fetching

    private func fetch() async throws -> VerificationKeySet {
        let (jwksURL, etag, haveKeys) = try await resolveJWKSURL()
        var headers = ["Accept": "application/jwk-set+json, application/json"]
        if haveKeys, let etag { headers["If-None-Match"] = etag }
        let response = try await http.get(jwksURL, headers: headers, timeout: policy.timeout, maximumSize: policy.maximumResponseSize)
        let lifetime = lifetime(from: response.headers["cache-control"])
        let now = clock.now()
        if response.status == 304, haveKeys {
            return state.withLock { state in
                state.fetchedAt = now
                state.lifetime = lifetime
                recovered(&state)
                return state.keys!
            }
        }
        guard response.status == 200 else { throw HTTPGetError(description: "JWKS endpoint answered HTTP \(response.status)") }
        let keys = try keySet(
            fromJWKS: response.body, origin: "JWKS from \(jwksURL.host ?? "?")",
            allowedAlgorithms: allowedAlgorithms, logger: logger)
        return state.withLock { state in
            let firstLoad = state.keys == nil
            state.keys = keys
            state.etag = response.headers["etag"]
            state.fetchedAt = now
            state.lifetime = lifetime
            recovered(&state)
            logger?(
                KeySourceEvent(
                    level: firstLoad ? .info : .debug,
                    message: "loaded \(keys.keys.count) key(s) from \(jwksURL.host ?? "?"), cached for \(Int(lifetime)) s"))
            return keys
        }
    }

    private func resolveJWKSURL() async throws -> (URL, String?, Bool) {
        let (known, etag, haveKeys) = state.withLock { ($0.jwksURL, $0.etag, $0.keys != nil) }
        if let known { return (known, etag, haveKeys) }
        switch location {
        case .jwks(let url):
            state.withLock { $0.jwksURL = url }
            return (url, etag, haveKeys)
        case .discovery(let issuer, let metadataURL):
            let response = try await http.get(
                metadataURL, headers: ["Accept": "application/json"], timeout: policy.timeout,
                maximumSize: policy.maximumResponseSize)
            guard response.status == 200 else { throw HTTPGetError(description: "metadata endpoint answered HTTP \(response.status)") }
            let metadata = try JSONObject(parsing: response.body)
            // RFC 8414 §3.3: the issuer in the metadata MUST be identical to the one used to build its URL.
            guard metadata["issuer"]?.stringValue == issuer else {
                throw HTTPGetError(description: "metadata issuer differs from the configured issuer")
            }
            guard let text = metadata["jwks_uri"]?.stringValue, let url = URL(string: text), Self.isAcceptableKeyURL(url) else {
                throw HTTPGetError(description: "metadata has no https jwks_uri")
            }
            state.withLock { $0.jwksURL = url }
            return (url, etag, haveKeys)
        }
    }

    func lifetime(from cacheControl: String?) -> Double {
        var lifetime = policy.defaultLifetime
        for directive in (cacheControl ?? "").lowercased().split(separator: ",") {
            let part = directive.trimmingCharacters(in: .whitespaces)
            if part == "no-cache" || part == "no-store" {
                lifetime = policy.minimumLifetime
            } else if part.hasPrefix("max-age="), let seconds = Double(part.dropFirst(8)), seconds.isFinite {
                lifetime = seconds
            }
        }
        return min(max(lifetime, policy.minimumLifetime), policy.maximumLifetime)
    }

    private func recordFailure(_ error: any Error, _ state: inout State) {
        if !state.failing {
            state.failing = true
            let serving = state.keys == nil ? "no keys to serve yet" : "serving cached keys meanwhile"
            logger?(KeySourceEvent(level: .error, message: "JWKS refresh failed (\(error)); \(serving)"))
        }
    }

    private func recovered(_ state: inout State) {
        if state.failing {
            state.failing = false
            logger?(KeySourceEvent(level: .info, message: "JWKS refresh works again"))
        }
    }
}
