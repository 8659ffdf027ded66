public import Foundation
public import TesseraJOSE

/// Verifies JWT access tokens (RFC 9068) with no call to the issuer.
///
/// Configure it once; call `verify(_:)` per request with the raw token. Checks, in order: size,
/// compact shape and header (TesseraJOSE), `alg` on the allow-list, key chosen by `kid` from the
/// trusted keys only and bound to the header's `alg`, signature, `typ` (`at+jwt`), no `cty`, then the
/// claims: required members present with the right JSON types, `iss` exact, `aud` contains an accepted
/// audience, `exp`/`nbf`/`iat` against the clock with leeway, `scope` a space-separated string.
public struct AccessTokenVerifier: Sendable {
    public struct Configuration: Sendable {
        /// The issuer identifier; `iss` must equal it exactly (no normalisation).
        public var issuer: String
        /// Audiences this resource server accepts; `aud` must contain one of them.
        public var audiences: Set<String>
        /// The algorithm allow-list; by default the asymmetric ones (no HS*).
        public var allowedAlgorithms: Set<JWSAlgorithm> = Set(JWSAlgorithm.asymmetric)
        /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds (default 60).
        public var leeway: TimeInterval = 60
        /// Tokens longer than this many bytes are refused before any decoding (default 16 KiB).
        public var maximumTokenSize: Int = UnverifiedJWS.defaultMaximumSize
        public var clock: WallClock = .system
        /// Tokens kept once verified, so one presented again is not verified again (0: none kept). Every hit
        /// still checks `exp` and `nbf`, and a key leaving the key set takes its tokens out (`VerifiedTokenCache`).
        public var verifiedTokenCacheSize = 4_096

        public init(issuer: String, audiences: Set<String>) {
            self.issuer = issuer
            self.audiences = audiences
        }

        public init(issuer: String, audience: String) { self.init(issuer: issuer, audiences: [audience]) }

        func validate() throws {
            guard !issuer.isEmpty else { throw VerifierConfigurationError(.invalidConfiguration, "the expected issuer is empty") }
            guard !audiences.isEmpty, !audiences.contains("") else {
                throw VerifierConfigurationError(.invalidConfiguration, "at least one non-empty accepted audience is required")
            }
            guard !allowedAlgorithms.isEmpty else { throw VerifierConfigurationError(.invalidConfiguration, "no algorithm is allowed") }
            guard leeway >= 0, leeway <= 600 else {
                throw VerifierConfigurationError(.invalidConfiguration, "leeway must be between 0 and 600 seconds")
            }
            guard maximumTokenSize >= 512, maximumTokenSize <= 1 << 20 else {
                throw VerifierConfigurationError(.invalidConfiguration, "maximum token size must be between 512 bytes and 1 MiB")
            }
            guard verifiedTokenCacheSize >= 0, verifiedTokenCacheSize <= 1_000_000 else {
                throw VerifierConfigurationError(.invalidConfiguration, "the verified-token cache holds between 0 and 1,000,000 tokens")
            }
        }
    }

    public let configuration: Configuration
    private let keySource: any KeySource
    let cache: VerifiedTokenCache?

    /// A verifier whose keys come from `keySource` (static, file, or remote JWKS).
    public init(configuration: Configuration, keySource: any KeySource) throws {
        try configuration.validate()
        self.configuration = configuration
        self.keySource = keySource
        cache = configuration.verifiedTokenCacheSize > 0 ? VerifiedTokenCache(capacity: configuration.verifiedTokenCacheSize) : nil
    }

    /// A verifier with a fixed set of trusted keys. Fails when no key fits the allowed algorithms.
    public init(configuration: Configuration, keys: VerificationKeySet) throws {
        try configuration.validate()
        guard keys.keys.contains(where: { configuration.allowedAlgorithms.contains($0.algorithm) }) else {
            throw VerifierConfigurationError(.noUsableKey, "none of the trusted keys is for an allowed algorithm")
        }
        self.configuration = configuration
        self.keySource = StaticKeySource(keys)
        cache = configuration.verifiedTokenCacheSize > 0 ? VerifiedTokenCache(capacity: configuration.verifiedTokenCacheSize) : nil
    }

    /// Verifies `token` and returns the verified access token, or throws `TokenVerificationError`.
    ///
    /// An unknown `kid` makes the key source refresh once (remote JWKS: at most once per cooldown;
    /// during the cooldown such tokens fail at once).
    public func verify(_ token: String) async throws -> AccessToken {
        // A token verified before is looked up first, before any parsing; the keys are fetched only for a token
        // the cache holds (a token it does not hold, garbage included, goes on as if there were no cache).
        if let cache, token.utf8.count <= configuration.maximumTokenSize {
            let key = VerifiedTokenCache.Key(token)
            if cache.holds(key, token) {
                let keys = try await keySource.currentKeys()
                if let hit = cache.lookup(key, token, keys: keys, now: configuration.clock.now(), leeway: configuration.leeway) { return hit }
            }
        }
        let parsed = try parse(token)
        var keys = try await keySource.currentKeys()
        do {
            return try verify(token, parsed, using: keys)
        } catch let error as TokenVerificationError where error.code == .unknownKey && parsed.header.keyID != nil {
            guard let refreshed = await keySource.keysAfterUnknownKeyID() else { throw error }
            keys = refreshed
            return try verify(token, parsed, using: keys)
        }
    }

    /// Verifies `token` against `keys` synchronously (no key refresh).
    public func verify(_ token: String, using keys: VerificationKeySet) throws -> AccessToken {
        if let cache, token.utf8.count <= configuration.maximumTokenSize,
            let hit = cache.lookup(token, keys: keys, now: configuration.clock.now(), leeway: configuration.leeway)
        {
            return hit
        }
        return try verify(token, try parse(token), using: keys)
    }

    private func verify(_ token: String, _ parsed: UnverifiedJWS, using keys: VerificationKeySet) throws -> AccessToken {
        let accessToken = try verify(parsed, using: keys)
        if let cache, let key = try? keys.key(for: parsed.header) { cache.insert(token, accessToken, key: key, keys: keys) }
        return accessToken
    }

    private func parse(_ token: String) throws -> UnverifiedJWS {
        let parsed: UnverifiedJWS
        do {
            parsed = try UnverifiedJWS(parsing: token, maximumSize: configuration.maximumTokenSize)
        } catch let error as JOSEError {
            throw TokenVerificationError(error)
        }
        guard configuration.allowedAlgorithms.contains(parsed.header.algorithm) else {
            throw TokenVerificationError(.algorithmNotAllowed, "\(parsed.header.algorithm) is not an allowed algorithm")
        }
        return parsed
    }

    private func verify(_ parsed: UnverifiedJWS, using keys: VerificationKeySet) throws -> AccessToken {
        let verified: VerifiedJWS
        do {
            verified = try parsed.verified(using: keys)
        } catch let error as JOSEError {
            throw TokenVerificationError(error)
        }
        try ClaimsValidator.checkType(verified.header)
        return try ClaimsValidator.accessToken(from: verified, configuration: configuration, now: configuration.clock.now())
    }
}

/// A verifier configured wrongly: raised when it is created, never per request. The code says which part.
public struct VerifierConfigurationError: CodedError {
    public typealias Code = ErrorCode<VerifierConfigurationError>

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) { (self.code, self.message) = (code, message) }
}

/// The codes of `VerifierConfigurationError`.
extension ErrorCode where Domain == VerifierConfigurationError {
    /// An issuer, audience, algorithm list, leeway or size bound out of range.
    public static var invalidConfiguration: Self { Self("invalid_configuration") }
    /// A JWK Set file that cannot be read, or is larger than 1 MiB.
    public static var unreadableKeys: Self { Self("unreadable_keys") }
    /// Keys that are not a usable JWK Set, or none usable for an allowed algorithm.
    public static var noUsableKey: Self { Self("no_usable_key") }
}
