import Foundation
import TesseraJOSE

/// Access tokens this verifier has already verified, so that a client presenting its token again — the normal
/// case, every request until the token expires — costs a SHA-256 and a lookup instead of a signature check
/// (issue 19: an ES256 verification was three quarters of a protected request).
///
/// Why a hit is as good as a verification:
/// - **Keyed by the whole token**: the SHA-256 of all its bytes, and the stored token is compared byte for byte
///   on a hit. A token that differs anywhere (another signature, another claim) is not found and goes through
///   the whole check.
/// - **Only successes are kept**, each with what the check established; the configuration (issuer,
///   audiences, algorithms, leeway) never changes for a verifier, so those checks hold as they did.
/// - **Time is checked again on every hit**: `exp` and `nbf` against the clock with the same leeway, exactly
///   as the claims check does. An expired token is refused from the cache as it would be without it.
/// - **Keys**: each entry names the RFC 7638 thumbprint of the key that verified it. When the key source
///   hands out another key set, entries whose key is not in it — by thumbprint, so a kid reused for other
///   key material does not count — are dropped before anything is served, so a key that leaves the JWK Set
///   (rotation, revocation) takes its tokens with it.
/// - **Bounded**: at most `capacity` entries, the oldest evicted first. Tokens verified with an HMAC key
///   are not kept (their check costs less than a lookup would save).
final class VerifiedTokenCache: @unchecked Sendable {
    struct Key: Hashable {
        let a: UInt64, b: UInt64, c: UInt64, d: UInt64

        init(_ token: String) {
            let digest = Digest.sha256(token.utf8)
            func word(_ offset: Int) -> UInt64 { digest[offset..<(offset + 8)].reduce(0) { $0 << 8 | UInt64($1) } }
            (a, b, c, d) = (word(0), word(8), word(16), word(24))
        }
    }

    struct Entry {
        let token: String
        let accessToken: AccessToken
        let thumbprint: String
    }

    let capacity: Int
    private let lock = NSLock()
    private var entries: [Key: Entry] = [:]
    /// Insertion order, for eviction: a ring of `capacity` slots.
    private var order: [Key?]
    private var next = 0
    /// The key set the entries were checked against, and its keys' thumbprints.
    private var keySetSerial: UInt64?
    private var thumbprints: [String: String] = [:]
    private(set) var hits = 0

    init(capacity: Int) {
        self.capacity = capacity
        order = Array(repeating: nil, count: capacity)
    }

    var count: Int { lock.withLock { entries.count } }

    /// The verified token, if `token` was verified before with a key still in `keys` and is within its
    /// lifetime at `now`; nil otherwise (the caller verifies it in full).
    func lookup(_ token: String, keys: VerificationKeySet, now: Date, leeway: TimeInterval) -> AccessToken? {
        lookup(Key(token), token, keys: keys, now: now, leeway: leeway)
    }

    /// Whether `token` (whose digest is `key`) is kept: a hit still has to pass `lookup`.
    func holds(_ key: Key, _ token: String) -> Bool {
        lock.withLock { entries[key]?.token.sameBytes(as: token) ?? false }
    }

    /// `lookup` with the token's digest already made.
    func lookup(_ key: Key, _ token: String, keys: VerificationKeySet, now: Date, leeway: TimeInterval) -> AccessToken? {
        lock.withLock {
            adopt(keys)
            guard let entry = entries[key], entry.token.sameBytes(as: token) else { return nil }
            let accessToken = entry.accessToken
            // The claims check's own time rules (RFC 7519 §4.1.4, §4.1.5).
            guard now < accessToken.expiresAt.addingTimeInterval(leeway) else { return nil }
            if let notBefore = accessToken.notBefore, notBefore > now.addingTimeInterval(leeway) { return nil }
            hits += 1
            return accessToken
        }
    }

    /// Keeps `accessToken`, which `token` verified to with `key` from `keys`.
    func insert(_ token: String, _ accessToken: AccessToken, key: VerificationKey, keys: VerificationKeySet) {
        guard !key.isSymmetric else { return }
        let cacheKey = Key(token)
        lock.withLock {
            adopt(keys)
            guard let thumbprint = key.keyID.flatMap({ thumbprints[$0] }) ?? (try? key.thumbprint()) ?? nil else { return }
            guard entries.updateValue(Entry(token: token, accessToken: accessToken, thumbprint: thumbprint), forKey: cacheKey) == nil else { return }
            if let evicted = order[next] { entries[evicted] = nil }
            order[next] = cacheKey
            next = (next + 1) % capacity
        }
    }

    /// With the lock held: when `keys` is not the set the entries were checked against, drops every entry
    /// whose key it lacks.
    private func adopt(_ keys: VerificationKeySet) {
        guard keys.serial != keySetSerial else { return }
        var current: [String: String] = [:]
        for key in keys.keys where !key.isSymmetric {
            if let thumbprint = try? key.thumbprint() { current[key.keyID ?? thumbprint] = thumbprint }
        }
        let kept = Set(current.values)
        entries = entries.filter { kept.contains($0.value.thumbprint) }
        (keySetSerial, thumbprints) = (keys.serial, current)
    }
}
