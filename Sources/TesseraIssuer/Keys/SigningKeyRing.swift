import Foundation
import TesseraJOSE

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a running issuer signs with and publishes: loaded from the key folder, swapped whole when the
/// manifest changes. `current` looks at the manifest (one `stat`) each time it is asked and reloads when
/// it changed, so no token is signed with a key after `tessera keys revoke` returned; `watch` polls too,
/// and `reload()` runs on SIGHUP.
///
/// A bad new state is reported and the previous one stays in use, so a half-edited manifest never stops
/// the server from signing — with one exception that always wins: a key the readable new manifest no
/// longer lists as active stops signing, and one it no longer publishes stops being published, even when
/// the rest of the new state cannot be loaded. A revoked key is presumed compromised; with no active key
/// left for an algorithm, requests that need one get `temporarily_unavailable`.
public final class SigningKeyRing: @unchecked Sendable {
    /// One consistent view: the ring, the active signing key per algorithm, and the published JWKS.
    public struct Snapshot: Sendable {
        public let ring: KeyRing
        public let signers: [String: SigningKey]
        public let jwks: JWKSet
        /// The published keys, imported once per key-ring state (introspection verifies with them).
        /// nil for a ring of HMAC keys only (nothing is published).
        public let verificationKeys: VerificationKeySet?
        /// The JWKS document as served, and its strong ETag (quoted base64url SHA-256 of the body).
        public let jwksJSON: String
        public let etag: String
        /// `Cache-Control` for the JWKS: `max-age` is the policy's, which the publish delay exceeds (THREATS C13).
        public var cacheControl: String { "public, max-age=\(ring.policy.jwksMaxAge)" }

        /// The key new tokens are signed with: the one active key, or the active key of `algorithm`.
        public func signer(_ algorithm: JWSAlgorithm? = nil) -> SigningKey? {
            if let algorithm { return signers[algorithm.name] }
            return signers.count == 1
                ? signers.values.first : signers[JWSAlgorithm.es256.name] ?? signers.values.sorted { $0.algorithm.name < $1.algorithm.name }.first
        }
    }

    public enum Event: Sendable, Equatable {
        /// A key was generated and activated at start: ES256 for an empty key folder, and the RS256 key of
        /// ID tokens (OpenID Connect Core §15.1) for a ring that never had one (`kid`, `alg`).
        case bootstrapped(kid: String, algorithm: String = "ES256")
        /// First start on a folder that held no key yet but was open to group or others (a fresh clone's
        /// `keys/`, 0755): it was made 0700 before the first key was written. `formerMode` is octal, e.g. 0o755.
        case tightenedFolder(path: String, formerMode: UInt16)
        case reloaded(activeKids: [String], published: Int)
        /// The new state was refused; the previous one stays in use.
        case reloadFailed(String)
    }

    /// The key folder; nil for a ring kept elsewhere (a database), whose owner swaps snapshots in (`replace`).
    public let store: KeyStore?
    private let clock: WallClock
    private let onEvent: (@Sendable (Event) -> Void)?
    private let lock = NSLock()
    private var snapshot: Snapshot
    private var fingerprint: FileFingerprint?

    /// Loads the key ring. With `bootstrap`, an empty or missing key folder gets one ES256 key, active, and
    /// each of `alsoBootstrap` the ring never had a key of gets one, active at once: no verifier can hold a
    /// cached key set that lacks it while expecting tokens of it (Core §10.1.1: an unknown kid is refetched).
    /// A key of that algorithm revoked or removed by an operator stays gone.
    public init(
        store: KeyStore, bootstrap: Bool = true, alsoBootstrap: [JWSAlgorithm] = [], clock: WallClock = .system,
        onEvent: (@Sendable (Event) -> Void)? = nil
    ) throws {
        self.store = store
        self.clock = clock
        self.onEvent = onEvent
        if bootstrap {
            if let formerMode = try store.tightenIfHoldingNoKeys() {
                onEvent?(.tightenedFolder(path: store.path, formerMode: formerMode))
            }
            let generated: [KeyRingEntry] = try store.update(create: true) { ring, writer in
                var added: [KeyRingEntry] = []
                if ring.activeKeys.isEmpty, ring.published.isEmpty {
                    added.append(try writer.addGeneratedKey(.es256, activate: true, now: clock.now(), to: &ring))
                }
                for algorithm in alsoBootstrap where !ring.keys.contains(where: { $0.alg == algorithm.name }) {
                    added.append(try writer.addGeneratedKey(algorithm, activate: true, now: clock.now(), to: &ring))
                }
                return added
            }
            for entry in generated { onEvent?(.bootstrapped(kid: entry.kid, algorithm: entry.alg)) }
        }
        fingerprint = FileFingerprint(store)
        snapshot = try Self.load(store)
        // A server does not start without a key to sign with; a running one may lose its last (revocation).
        guard !snapshot.signers.isEmpty else { throw KeyStoreError(.noActiveKey, "the key ring has no active key") }
    }

    /// A ring kept outside a key folder: starts from `snapshot`; its owner follows the source and calls
    /// `replace` (or `withdraw`) when it changes.
    public init(snapshot: Snapshot, clock: WallClock = .system, onEvent: (@Sendable (Event) -> Void)? = nil) throws {
        store = nil
        self.clock = clock
        self.onEvent = onEvent
        self.snapshot = snapshot
        guard !snapshot.signers.isEmpty else { throw KeyStoreError(.noActiveKey, "the key ring has no active key") }
    }

    /// Swaps in a whole new key set (a ring kept outside a key folder).
    public func replace(with next: Snapshot) {
        lock.withLock { snapshot = next }
        onEvent?(.reloaded(activeKids: next.ring.activeKeys.map(\.kid), published: next.jwks.keys.count))
    }

    /// Keeps the current key set less every key `ring` no longer has active or published: what a ring whose
    /// new state cannot be loaded whole still obeys (a revoked key stops signing).
    public func withdraw(to ring: KeyRing, because reason: String) {
        let withdrawn = lock.withLock {
            let kept = snapshot.restricted(to: ring)
            snapshot = kept.snapshot
            return kept.withdrawn
        }
        onEvent?(.reloadFailed(reason + (withdrawn.isEmpty ? "" : "; withdrawn all the same: \(withdrawn.joined(separator: ", "))")))
    }

    /// The key set to sign and publish with: reloaded first when the manifest changed since the last look
    /// (one `stat` and one lock when it did not).
    public var current: Snapshot {
        guard let store else { return lock.withLock { snapshot } }
        let seen = FileFingerprint(store)
        if let unchanged = lock.withLock({ seen == fingerprint ? snapshot : nil }) { return unchanged }
        reloading.withLock { _ = reload(seen, onlyIfChanged: true) }
        return lock.withLock { snapshot }
    }

    /// Reads the key folder again and swaps the whole key set in. On an error keeps the current one,
    /// less every key the new manifest (when it can be read) no longer has active or published.
    @discardableResult
    public func reload() -> Bool {
        guard let store else { return false }
        return reloading.withLock { reload(FileFingerprint(store), onlyIfChanged: false) }
    }

    /// Reloads when the manifest's inode, size or modification time changed since the last look. Callers
    /// that arrive during a reload wait for it: none of them may go on with a key it withdraws.
    @discardableResult
    public func reloadIfChanged() -> Bool {
        guard let store else { return false }
        let seen = FileFingerprint(store)
        guard lock.withLock({ seen != fingerprint }) else { return false }
        return reloading.withLock { reload(seen, onlyIfChanged: true) }
    }

    private let reloading = NSLock()

    /// Called holding `reloading`. `seen` is the manifest's fingerprint taken before its files are read, so
    /// a change made during the read is noticed at the next look. With `onlyIfChanged`, a reload another
    /// caller finished meanwhile (its fingerprint is `seen`) is not repeated.
    private func reload(_ seen: FileFingerprint?, onlyIfChanged: Bool) -> Bool {
        guard let store else { return false }
        if onlyIfChanged, lock.withLock({ seen == fingerprint }) { return false }
        do {
            let next = try Self.load(store)
            lock.withLock {
                snapshot = next
                fingerprint = seen
            }
            onEvent?(.reloaded(activeKids: next.ring.activeKeys.map(\.kid), published: next.jwks.keys.count))
            return true
        } catch {
            let withdrawn: [String]
            if let ring = try? store.readManifest() {
                let kept = lock.withLock { snapshot.restricted(to: ring) }
                withdrawn = kept.withdrawn
                lock.withLock { snapshot = kept.snapshot }
            } else {
                withdrawn = []
            }
            lock.withLock { fingerprint = seen }
            onEvent?(.reloadFailed("\(error)" + (withdrawn.isEmpty ? "" : "; withdrawn all the same: \(withdrawn.joined(separator: ", "))")))
            return false
        }
    }

    /// Polls the manifest every `interval` until the task is cancelled (run it as a server service).
    public func watch(every interval: Duration = .seconds(2)) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            reloadIfChanged()
        }
    }

    static func load(_ store: KeyStore) throws -> Snapshot {
        let ring = try store.read()
        var signers: [String: SigningKey] = [:]
        for entry in ring.activeKeys { signers[entry.alg] = try store.signingKey(entry) }
        return Snapshot(ring: ring, signers: signers, jwks: try store.publishedJWKS(ring))
    }
}

extension SigningKeyRing.Snapshot {
    /// The key set of `ring`: its active keys by algorithm, and the JWK Set it publishes (the ETag is the
    /// document's digest, so every instance serving the same key set serves the same ETag).
    public init(ring: KeyRing, signers: [String: SigningKey], jwks: JWKSet) {
        let json = jwks.jsonString
        self.init(
            ring: ring, signers: signers, jwks: jwks, verificationKeys: try? VerificationKeySet(jwks: jwks), jwksJSON: json,
            etag: "\"" + Base64URL.encode(Digest.sha256(Array(json.utf8))) + "\"")
    }

    /// This key set less the keys `newer` no longer has active (for signing) or published (in the JWKS),
    /// and the kids withdrawn. Keys `newer` adds are not taken: they could not be loaded.
    func restricted(to newer: KeyRing) -> (snapshot: Self, withdrawn: [String]) {
        let active = Set(newer.activeKeys.map(\.kid))
        let published = Set(newer.published.map(\.kid))
        let signers = self.signers.filter { $0.value.keyID.map(active.contains) ?? false }
        let jwks = JWKSet(keys: self.jwks.keys.filter { $0.keyID.map(published.contains) ?? false })
        let withdrawn = Set(self.signers.values.compactMap(\.keyID)).subtracting(signers.values.compactMap(\.keyID))
            .union(Set(self.jwks.keys.compactMap(\.keyID)).subtracting(jwks.keys.compactMap(\.keyID)))
        guard !withdrawn.isEmpty else { return (self, []) }
        return (Self(ring: ring, signers: signers, jwks: jwks), withdrawn.sorted())
    }
}

/// Enough of a file's identity to notice a replaced or rewritten file without reading it.
struct FileFingerprint: Equatable {
    let inode: UInt64
    let size: Int64
    let modified: Int64

    init?(_ store: KeyStore) { self.init(path: store.path + "/" + KeyStore.manifestName) }

    init?(path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modified = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
    }
}
