import Foundation

/// An immutable set of trusted verification keys and the rule that picks one for a token.
///
/// Selection demands exactly one match and never falls back to a default key: with a `kid`, the key
/// with that `kid`, whose algorithm must equal the header's; without a `kid`, the one key whose
/// algorithm equals the header's (more than one is `ambiguousKey`). Keys without a `kid` are never
/// matched by a token that carries one.
public struct VerificationKeySet: Sendable {
    /// A JWK that was left out of the set, and why (for the operator's log).
    public struct SkippedKey: Sendable {
        public let keyID: String?
        public let error: JOSEError
    }

    public let keys: [VerificationKey]
    /// JWKs of the source set that were not usable for verification.
    public let skipped: [SkippedKey]
    private let byID: [String: VerificationKey]
    /// A number no other set made by this process has: a cache of verified tokens notices by it that the
    /// keys changed (`TesseraVerifier`'s `VerifiedTokenCache`).
    package let serial: UInt64

    /// A set of keys. Duplicate `kid`s, and symmetric keys mixed with asymmetric ones, are refused:
    /// either would let a token influence which kind of key checks it.
    public init(_ keys: [VerificationKey]) throws {
        try self.init(keys, skipped: [])
    }

    private init(_ keys: [VerificationKey], skipped: [SkippedKey]) throws {
        var byID: [String: VerificationKey] = [:]
        for key in keys {
            guard let keyID = key.keyID else { continue }
            guard byID.updateValue(key, forKey: keyID) == nil else {
                throw JOSEError(.invalidKeySet, "two keys share a kid (\(keyID.utf8.count) bytes)")
            }
        }
        if keys.contains(where: \.isSymmetric), keys.contains(where: { !$0.isSymmetric }) {
            throw JOSEError(.invalidKeySet, "symmetric and asymmetric keys in one set")
        }
        self.keys = keys
        self.byID = byID
        self.skipped = skipped
        serial = Self.serials.withLock {
            $0 += 1
            return $0
        }
    }

    private static let serials = LockedCounter()

    /// The verification keys of a JWK Set.
    ///
    /// The whole set is refused when any asymmetric JWK carries private members (a leaked private
    /// key, RFC 7517 §A.2) or when the usable keys are ambiguous (see `init(_:)`). Individual JWKs that
    /// cannot verify JWS — `use` other than `sig`, `key_ops` without `verify`, no or an unknown `alg`,
    /// weak or malformed material, and `oct` keys unless `allowSymmetricKeys` — are left out and
    /// listed in `skipped`. `algorithms` restricts the set further (an allow-list).
    public init(jwks: JWKSet, allowSymmetricKeys: Bool = false, algorithms: Set<JWSAlgorithm>? = nil) throws {
        // RFC 7517 §4.5: a kid names one key. A set that repeats one is ambiguous even when one of the
        // two entries would be skipped: which entry a peer keeps is then a matter of its parser.
        var seen = Set<String>()
        for keyID in jwks.keys.compactMap(\.keyID) where !seen.insert(keyID).inserted {
            throw JOSEError(.invalidKeySet, "two JWKs share a kid (\(keyID.utf8.count) bytes)")
        }
        var usable: [VerificationKey] = []
        var skipped: [SkippedKey] = []
        for jwk in jwks.keys {
            if jwk.keyType != "oct", jwk.containsPrivateMembers {
                throw JOSEError(.invalidKeySet, "a verification key set contains a private key")
            }
            do {
                if jwk.keyType == "oct", !allowSymmetricKeys {
                    throw JOSEError(.keyUsageMismatch, "symmetric (oct) keys are not accepted from this key set")
                }
                let key = try VerificationKey(jwk: jwk)
                if let algorithms, !algorithms.contains(key.algorithm) {
                    throw JOSEError(.unsupportedAlgorithm, "\(key.algorithm) is not an allowed algorithm")
                }
                usable.append(key)
            } catch let error as JOSEError {
                skipped.append(SkippedKey(keyID: jwk.keyID, error: error))
            }
        }
        try self.init(usable, skipped: skipped)
    }

    /// The key that must verify a token with this header.
    public func key(for header: JWSHeader) throws -> VerificationKey {
        if let keyID = header.keyID {
            // The dictionary matches canonically equivalent kids ("\u{212A}" for "K"); the kid must be the same bytes.
            guard let key = byID[keyID], key.keyID.sameBytes(as: keyID) else { throw JOSEError(.unknownKey, "no trusted key has the token's kid") }
            guard key.algorithm == header.algorithm else {
                throw JOSEError(.algorithmMismatch, "the key with this kid is for \(key.algorithm), the token says \(header.algorithm)")
            }
            return key
        }
        let candidates = keys.filter { $0.algorithm == header.algorithm }
        guard let key = candidates.first else {
            throw JOSEError(.unknownKey, "token has no kid and no trusted key is for \(header.algorithm)")
        }
        guard candidates.count == 1 else {
            throw JOSEError(.ambiguousKey, "token has no kid and \(candidates.count) trusted keys are for \(header.algorithm)")
        }
        return key
    }

    /// The public JWK Set of the asymmetric keys (symmetric keys are never published).
    public func publicJWKSet() throws -> JWKSet {
        JWKSet(keys: try keys.compactMap { try $0.publicJWK() })
    }
}

/// A counter behind a lock (the key sets' serial numbers).
final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value: UInt64 = 0

    func withLock<T>(_ body: (inout UInt64) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}
