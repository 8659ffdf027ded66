public import Foundation
public import TesseraJOSE

/// The timings of key rotation, kept in the key ring's manifest so the CLI and the server agree.
public struct KeyRingPolicy: Codable, Sendable, Equatable {
    /// The `Cache-Control: max-age` the server sends with its JWKS (seconds).
    public var jwksMaxAge: Int
    /// Allowed clock difference between issuer and verifiers, and the server's reload delay (seconds).
    public var clockSkew: Int
    /// The longest access-token lifetime any client has (seconds).
    public var maxTokenLifetime: Int

    public init(jwksMaxAge: Int = 300, clockSkew: Int = 60, maxTokenLifetime: Int = 600) {
        self.jwksMaxAge = jwksMaxAge
        self.clockSkew = clockSkew
        self.maxTokenLifetime = maxTokenLifetime
    }

    /// How long a new key must be published before it may sign: every verifier that cached the JWKS
    /// just before the key appeared has refetched it by then (OpenID Connect Core §10.1.1).
    public var publishDelay: Int { jwksMaxAge + clockSkew }
    /// How long a key stays published after it stopped signing: until every token it signed has expired.
    public var retention: Int { maxTokenLifetime + clockSkew }

    enum CodingKeys: String, CodingKey {
        case jwksMaxAge = "jwks_max_age"
        case clockSkew = "clock_skew"
        case maxTokenLifetime = "max_token_lifetime"
    }
}

/// One key of the ring and where it is in its life.
public struct KeyRingEntry: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        /// Published in the JWKS, not yet signing.
        case pending
        /// Signs new tokens; exactly one per algorithm in use.
        case active
        /// Published, no longer signing, until `removeAfter`.
        case retiring
        /// Withdrawn at once (compromise): not published, never signs; its file is deleted.
        case revoked
    }

    public var kid: String
    public var alg: String
    public var state: State
    /// The private key's file name inside the key folder.
    public var file: String
    public var created: Date
    public var activated: Date?
    public var retiringSince: Date?
    public var removeAfter: Date?
    public var revoked: Date?

    public var algorithm: JWSAlgorithm? { JWSAlgorithm(name: alg) }
    public var isPublished: Bool { state == .pending || state == .active || state == .retiring }

    enum CodingKeys: String, CodingKey {
        case kid, alg, state, file, created, activated, revoked
        case retiringSince = "retiring_since"
        case removeAfter = "remove_after"
    }
}

/// What `rotate` decided.
public enum KeyRotationDecision: Sendable, Equatable {
    /// `active` signs from now on; `retired` (the previous active key) stays published until its `removeAfter`.
    case rotated(active: KeyRingEntry, retired: KeyRingEntry?)
    /// No pending key of this algorithm: generate one, then rotate once it has been published long enough.
    case needsPendingKey
    /// The newest pending key has not been published long enough; a rotate is allowed from `allowedAt`.
    case waiting(pending: KeyRingEntry, allowedAt: Date)
    /// `--if-older-than`: the active key is younger than asked; nothing changed.
    case notDue(active: KeyRingEntry, dueAt: Date)
}

/// The key ring: the manifest's content and the pure rules of key rotation (no files, no clock).
public struct KeyRing: Codable, Sendable, Equatable {
    public var version: Int
    public var policy: KeyRingPolicy
    public var keys: [KeyRingEntry]

    public init(policy: KeyRingPolicy = KeyRingPolicy(), keys: [KeyRingEntry] = []) {
        version = 1
        self.policy = policy
        self.keys = keys
    }

    /// Keys the JWKS publishes (HMAC keys never are: their "public" form is the secret).
    public var published: [KeyRingEntry] { keys.filter(\.isPublished) }

    public func active(_ algorithm: JWSAlgorithm) -> KeyRingEntry? {
        keys.first { $0.state == .active && $0.alg == algorithm.name }
    }

    public var activeKeys: [KeyRingEntry] { keys.filter { $0.state == .active } }

    public func entry(_ kid: String) -> KeyRingEntry? { keys.first { $0.kid.sameBytes(as: kid) } }

    /// Checks what a hand-edited or damaged manifest could get wrong.
    public func validate() throws {
        guard version == 1 else { throw KeyStoreError(.badManifest, "manifest version \(version) is not supported (this build reads 1)") }
        guard policy.jwksMaxAge >= 0, policy.clockSkew >= 0, policy.maxTokenLifetime > 0 else {
            throw KeyStoreError(.badManifest, "policy values must be non-negative (max_token_lifetime positive)")
        }
        // Verifiers cache a JWK Set for at least this long: a shorter max-age would break the publish delay.
        guard policy.jwksMaxAge >= JWKSCaching.minimumMaxAge else {
            throw KeyStoreError(
                .badManifest,
                "jwks_max_age must be at least \(JWKSCaching.minimumMaxAge) s, the shortest cache lifetime TesseraVerifier honours (keys/README.md)")
        }
        var kids = Set<String>()
        var actives = Set<String>()
        for key in keys {
            guard kids.insert(key.kid).inserted else { throw KeyStoreError(.badManifest, "kid \(key.kid) appears twice") }
            guard key.algorithm != nil else { throw KeyStoreError(.badManifest, "key \(key.kid) has an unknown algorithm \(key.alg)") }
            guard Self.isSafeFileName(key.file) else {
                throw KeyStoreError(.badManifest, "key \(key.kid) names a file outside the key folder: \(key.file)")
            }
            if key.state == .active, !actives.insert(key.alg).inserted {
                throw KeyStoreError(.badManifest, "two active \(key.alg) keys; exactly one may sign per algorithm")
            }
        }
    }

    /// A plain name in the key folder: no separators, no dot files, nothing a path could escape with.
    static func isSafeFileName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 128 && !name.hasPrefix(".")
            && name.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) && $0.isASCII || "-_.".unicodeScalars.contains($0) }
    }

    // MARK: Transitions

    /// Adds a newly generated key: `pending`, or `active` at once when `activate` and no key of its
    /// algorithm is active (the first key: no verifier holds a token it could fail to check).
    public mutating func add(kid: String, algorithm: JWSAlgorithm, file: String, now: Date, activate: Bool) throws -> KeyRingEntry {
        guard entry(kid) == nil else { throw KeyStoreError(.badManifest, "kid \(kid) is already in the key ring") }
        if activate { try checkActivation(algorithm) }
        let entry = KeyRingEntry(
            kid: kid, alg: algorithm.name, state: activate ? .active : .pending, file: file, created: now,
            activated: activate ? now : nil)
        keys.append(entry)
        return entry
    }

    /// Throws unless a new key of `algorithm` may sign at once: only when none of its algorithm is active.
    public func checkActivation(_ algorithm: JWSAlgorithm) throws {
        if let current = active(algorithm) {
            throw KeyStoreError(
                .rotationNotAllowed,
                "an \(algorithm.name) key (\(current.kid)) is already active: a new key may only sign once published for \(policy.publishDelay) s")
        }
    }

    /// Promotes the newest pending key of `algorithm` that has been published for the publish delay
    /// (any pending key with `force`) and retires the active one.
    public mutating func rotate(_ algorithm: JWSAlgorithm, now: Date, force: Bool = false, ifOlderThan: TimeInterval? = nil) -> KeyRotationDecision {
        let current = active(algorithm)
        if let ifOlderThan, let current, let activated = current.activated, now < activated + ifOlderThan {
            return .notDue(active: current, dueAt: activated + ifOlderThan)
        }
        let pending = keys.filter { $0.state == .pending && $0.alg == algorithm.name }.max { $0.created < $1.created }
        guard let pending else { return .needsPendingKey }
        let allowedAt = pending.created + TimeInterval(policy.publishDelay)
        guard force || now >= allowedAt else { return .waiting(pending: pending, allowedAt: allowedAt) }
        var retired: KeyRingEntry?
        for index in keys.indices where keys[index].state == .active && keys[index].alg == algorithm.name {
            keys[index].state = .retiring
            keys[index].retiringSince = now
            keys[index].removeAfter = now + TimeInterval(policy.retention)
            retired = keys[index]
        }
        let index = keys.firstIndex { $0.kid == pending.kid }!
        keys[index].state = .active
        keys[index].activated = now
        return .rotated(active: keys[index], retired: retired)
    }

    /// Withdraws a key at once (compromise): it leaves the JWKS and never signs again.
    public mutating func revoke(_ kid: String, now: Date) throws -> KeyRingEntry {
        guard let index = keys.firstIndex(where: { $0.kid.sameBytes(as: kid) }) else {
            throw KeyStoreError(.unknownKid, "no key with kid \(kid)", kid: kid)
        }
        guard keys[index].state != .revoked else { return keys[index] }
        keys[index].state = .revoked
        keys[index].revoked = now
        keys[index].removeAfter = nil
        return keys[index]
    }

    /// Removes retiring keys whose tokens have all expired; returns them (their files go too).
    public mutating func prune(now: Date) -> [KeyRingEntry] {
        let gone = keys.filter { $0.state == .retiring && ($0.removeAfter.map { $0 <= now } ?? false) }
        keys.removeAll { key in gone.contains { $0.kid == key.kid } }
        return gone
    }
}
