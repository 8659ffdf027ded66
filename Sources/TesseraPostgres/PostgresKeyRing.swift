public import Foundation
import NIOCore
import PostgresNIO
public import TesseraIssuer
public import TesseraJOSE

/// The signing key ring in PostgreSQL (issue 16): the manifest the key folder keeps in `keyring.json` in one
/// row, and each private key in a row of its own, sealed with AES-256-GCM under a key-encryption key that
/// never enters the database (`KeyEncryptionKey`), the kid and algorithm bound as associated data. The
/// rules — states, publish delay, retention — are `KeyRing`'s, as for the folder; only the storage differs.
///
/// Every change runs in one transaction under the manifest row's lock, so two operators (or instances) never
/// lose each other's change, and a key is written in the same transaction as the manifest entry naming it.
public struct PostgresKeyRing: Sendable {
    let database: PostgresDatabase
    public let kek: KeyEncryptionKey

    public init(database: PostgresDatabase, kek: KeyEncryptionKey) {
        self.database = database
        self.kek = kek
    }

    /// The validated ring; `noKeyRing` when none was made yet.
    public func read() async throws -> KeyRing {
        let (ring, _) = try await database.withConnection { connection in try await Self.manifest(on: connection, locking: false) }
        guard let ring else { throw KeyStoreError(.noKeyRing, "the database holds no key ring yet: tessera keys generate --database URL makes one") }
        return ring
    }

    /// The signing key of `entry`, unsealed and checked to be that key.
    public func signingKey(_ entry: KeyRingEntry) async throws -> SigningKey {
        let kek = kek
        let rows = try await database.withConnection { connection in
            var found: [(String, String, ByteBuffer)] = []
            for try await row in try await connection.query(
                "SELECT alg, kek_id, sealed FROM signing_keys WHERE kid = \(entry.kid)", logger: connection.logger
            ).decode((String, String, ByteBuffer).self) { found.append(row) }
            return found
        }
        return try Self.unseal(rows.first, entry: entry, kek: kek)
    }

    /// The JWK Set to publish: every pending, active and retiring asymmetric key.
    public func publishedJWKS(_ ring: KeyRing) async throws -> JWKSet {
        var keys: [SigningKey] = []
        for entry in ring.published where entry.algorithm?.isSymmetric == false { keys.append(try await signingKey(entry)) }
        return try JWKSet(publicKeysOf: keys)
    }

    /// Runs `body` on the ring under the manifest row's lock and writes the ring, and the keys `body` generated,
    /// in the same transaction. `create`: an empty ring when there is none.
    public func update<T: Sendable>(create: Bool = false, _ body: @escaping @Sendable (inout KeyRing, KeyGenerator) throws -> T) async throws -> T {
        let kek = kek
        return try await database.transaction { connection in
            if create {
                // A row to lock even for the first key: two first generations at once must queue, not both insert.
                let empty = String(decoding: try DocumentCoding.encoder(pretty: false).encode(KeyRing()), as: UTF8.self)
                try await connection.run("INSERT INTO key_ring (id, manifest, generation) VALUES (1, \(empty), 0) ON CONFLICT (id) DO NOTHING")
            }
            let (found, generation) = try await Self.manifest(on: connection, locking: true)
            guard var ring = found ?? (create ? KeyRing() : nil) else {
                throw KeyStoreError(.noKeyRing, "the database holds no key ring yet: tessera keys generate --database URL makes one")
            }
            let before = ring
            let generator = KeyGenerator()
            let result = try body(&ring, generator)
            try ring.validate()
            for (kid, algorithm, material) in generator.generated {
                let sealed = ByteBuffer(bytes: try kek.seal(material, kid: kid, algorithm: algorithm))
                try await connection.run("INSERT INTO signing_keys (kid, alg, kek_id, sealed) VALUES (\(kid), \(algorithm), \(kek.id), \(sealed))")
            }
            // A revoked key's material is needed no more, nor a pruned one's.
            let needed = ring.keys.filter { $0.state != .revoked }.map(\.kid)
            try await connection.run("DELETE FROM signing_keys WHERE NOT (kid = ANY(\(needed)))")
            if ring != before {
                let manifest = String(decoding: try DocumentCoding.encoder(pretty: false).encode(ring), as: UTF8.self)
                try await connection.run(
                    """
                    INSERT INTO key_ring (id, manifest, generation) VALUES (1, \(manifest), \(generation + 1))
                    ON CONFLICT (id) DO UPDATE SET manifest = excluded.manifest, generation = excluded.generation
                    """)
            }
            return result
        }
    }

    /// Generates a key (pending, or active when no key of its algorithm is) and returns its entry.
    public func generate(_ algorithm: JWSAlgorithm, activate: Bool, now: Date) async throws -> KeyRingEntry {
        try await update(create: true) { ring, generator in try generator.addGeneratedKey(algorithm, activate: activate, now: now, to: &ring) }
    }

    /// Re-seals every private key under `newKEK` in one transaction: all keys move, or none does (a failure,
    /// or the process killed part-way, leaves every key under the old key only). Returns how many moved.
    @discardableResult
    public func rewrap(to newKEK: KeyEncryptionKey) async throws -> Int {
        let kek = kek
        return try await database.transaction(timeout: .seconds(120)) { connection in
            _ = try await Self.manifest(on: connection, locking: true)
            var rows: [(String, String, String, ByteBuffer)] = []
            for try await row in try await connection.query("SELECT kid, alg, kek_id, sealed FROM signing_keys FOR UPDATE", logger: connection.logger)
                .decode((String, String, String, ByteBuffer).self)
            { rows.append(row) }
            for (kid, algorithm, kekID, sealed) in rows {
                guard kekID == kek.id else {
                    throw KeyStoreError(
                        .badKeyEncryptionKey, "key \(kid) is sealed under key-encryption key \(kekID), not \(kek.id): nothing was changed")
                }
                let material = try kek.unseal(Array(sealed.readableBytesView), kid: kid, algorithm: algorithm)
                let resealed = ByteBuffer(bytes: try newKEK.seal(material, kid: kid, algorithm: algorithm))
                try await connection.run("UPDATE signing_keys SET kek_id = \(newKEK.id), sealed = \(resealed) WHERE kid = \(kid)")
            }
            try await connection.run("UPDATE key_ring SET generation = generation + 1")
            return rows.count
        }
    }

    /// The manifest row and its generation (nil and 0 when there is none), locked when asked.
    static func manifest(on connection: PostgresConnection, locking: Bool) async throws -> (KeyRing?, Int64) {
        let query: PostgresQuery =
            locking ? "SELECT manifest, generation FROM key_ring WHERE id = 1 FOR UPDATE" : "SELECT manifest, generation FROM key_ring WHERE id = 1"
        for try await (text, generation) in try await connection.query(query, logger: connection.logger).decode((String, Int64).self) {
            let ring: KeyRing
            do { ring = try DocumentCoding.decoder.decode(KeyRing.self, from: Data(text.utf8)) } catch {
                throw KeyStoreError(.badManifest, "the database's key ring does not parse: \(error)")
            }
            try ring.validate()
            return (ring, generation)
        }
        return (nil, 0)
    }

    static func unseal(_ row: (String, String, ByteBuffer)?, entry: KeyRingEntry, kek: KeyEncryptionKey) throws -> SigningKey {
        guard let algorithm = entry.algorithm else { throw KeyStoreError(.badManifest, "key \(entry.kid): unknown algorithm \(entry.alg)") }
        guard let (alg, kekID, sealed) = row else {
            throw KeyStoreError(.badKeyFile, "the database holds no private key for kid \(entry.kid)", kid: entry.kid)
        }
        guard kekID == kek.id else {
            throw KeyStoreError(
                .badKeyEncryptionKey,
                "key \(entry.kid) is sealed under key-encryption key \(kekID), and this instance has \(kek.id): give it that key's file",
                kid: entry.kid)
        }
        guard alg == entry.alg else {
            throw KeyStoreError(.badKeyFile, "the database's key \(entry.kid) is for \(alg), not \(entry.alg)", kid: entry.kid)
        }
        let material = try kek.unseal(Array(sealed.readableBytesView), kid: entry.kid, algorithm: alg)
        return try KeyMaterial.signingKey(material, entry: entry, algorithm: algorithm, source: "the database's key \(entry.kid)")
    }
}

/// What `PostgresKeyRing.update` hands its body: generates keys, which the update seals and writes with the ring.
public final class KeyGenerator: KeyAdding, @unchecked Sendable {
    private(set) var generated: [(kid: String, algorithm: String, material: [UInt8])] = []

    /// Generates a key of `algorithm` and adds it to `ring` (pending, or active).
    public func addGeneratedKey(_ algorithm: JWSAlgorithm, activate: Bool, now: Date, to ring: inout KeyRing) throws -> KeyRingEntry {
        if activate { try ring.checkActivation(algorithm) }
        let (kid, material) = try KeyMaterial.generate(algorithm)
        generated.append((kid, algorithm.name, material))
        return try ring.add(kid: kid, algorithm: algorithm, file: kid, now: now, activate: activate)
    }
}

extension PostgresKeyRing {
    /// The manifest's change counter (0 when there is no ring yet).
    public func generation() async throws -> Int64 {
        try await database.withConnection { connection in
            for try await generation in try await connection.query("SELECT generation FROM key_ring WHERE id = 1", logger: connection.logger)
                .decode(Int64.self)
            { return generation }
            return 0
        }
    }

    /// What a server signs with and publishes, loaded from the database, unsealing only the keys not in
    /// `held` (kid → key, what the last snapshot used; a kid names one key for good), and what this snapshot
    /// uses, for the next. So an instance still running with the previous key-encryption key after
    /// `keys rewrap` keeps following the ring, as long as no new key came.
    public func snapshot(reusing held: [String: SigningKey]) async throws -> (snapshot: SigningKeyRing.Snapshot, keys: [String: SigningKey]) {
        let ring = try await read()
        var keys: [String: SigningKey] = [:]
        for entry in ring.keys where entry.state == .active || (entry.isPublished && entry.algorithm?.isSymmetric == false) {
            if let key = held[entry.kid] { keys[entry.kid] = key } else { keys[entry.kid] = try await signingKey(entry) }
        }
        var signers: [String: SigningKey] = [:]
        for entry in ring.activeKeys { signers[entry.alg] = keys[entry.kid] }
        let published = ring.published.filter { $0.algorithm?.isSymmetric == false }.compactMap { keys[$0.kid] }
        return (SigningKeyRing.Snapshot(ring: ring, signers: signers, jwks: try JWKSet(publicKeysOf: published)), keys)
    }

    /// The folder's bootstrap rules for a server's start: an empty ring gets an active ES256 key, and each of
    /// `alsoBootstrap` the ring never had a key of gets one, active at once. Several instances starting at
    /// once queue on the manifest's lock: one generates, the others find its keys.
    public func bootstrap(alsoBootstrap: [JWSAlgorithm], now: Date) async throws -> [KeyRingEntry] {
        try await update(create: true) { ring, generator in
            var added: [KeyRingEntry] = []
            if ring.activeKeys.isEmpty, ring.published.isEmpty {
                added.append(try generator.addGeneratedKey(.es256, activate: true, now: now, to: &ring))
            }
            for algorithm in alsoBootstrap where !ring.keys.contains(where: { $0.alg == algorithm.name }) {
                added.append(try generator.addGeneratedKey(algorithm, activate: true, now: now, to: &ring))
            }
            return added
        }
    }
}

/// Keeps a server's `SigningKeyRing` on the database's ring: looks at the manifest's counter (one small query)
/// and, when it moved, loads the key set — unsealing only keys it did not hold — and swaps it in. A state that
/// cannot be loaded is reported and the current key set kept, less every key the new manifest withdraws (a
/// revoked key stops signing). Called by `PostgresMaintenance`'s looks, which run one at a time.
public final class PostgresKeyRingFollower: @unchecked Sendable {
    let ring: PostgresKeyRing
    public let signing: SigningKeyRing
    private let lock = NSLock()
    private var seen: Int64
    private var held: [String: SigningKey] = [:]

    /// Starts from the ring as it is now: its counter, and the keys it uses, which later looks reuse.
    public init(ring: PostgresKeyRing, clock: WallClock = .system, onEvent: (@Sendable (SigningKeyRing.Event) -> Void)? = nil) async throws {
        self.ring = ring
        seen = try await ring.generation()
        let (snapshot, keys) = try await ring.snapshot(reusing: [:])
        signing = try SigningKeyRing(snapshot: snapshot, clock: clock, onEvent: onEvent)
        held = keys
    }

    /// One look; true when the ring had changed.
    @discardableResult
    public func follow() async throws -> Bool {
        let generation = try await ring.generation()
        let held = lock.withLock { generation != seen ? self.held : nil }
        guard let held else { return false }
        do {
            let (snapshot, keys) = try await ring.snapshot(reusing: held)
            lock.withLock { self.held = keys }
            signing.replace(with: snapshot)
        } catch let error as DatabaseError {
            throw error  // the database did not answer: the next look tries this change again
        } catch {
            // A key that does not open (another key-encryption key, a damaged row): reported once, not retried
            // until the ring changes again; what the new manifest withdraws goes all the same.
            if let manifest = try? await ring.read() { signing.withdraw(to: manifest, because: "\(error)") }
        }
        lock.withLock { seen = generation }
        return true
    }
}

extension PostgresKeyRing {
    /// `tessera db import --keys`: a key folder's ring moved in whole, in one transaction — the manifest as it
    /// stands (kids, states, times, policy) and every key it still needs, sealed. Refuses a database that
    /// already holds keys: two rings are never merged. Returns how many keys were sealed.
    public func importFolder(_ store: KeyStore) async throws -> Int {
        let ring = try store.read()
        var materials: [(kid: String, algorithm: String, material: [UInt8])] = []
        for entry in ring.keys where entry.state != .revoked { materials.append((entry.kid, entry.alg, try store.material(of: entry))) }
        let kek = kek
        let sealed = try materials.map { ($0.kid, $0.algorithm, ByteBuffer(bytes: try kek.seal($0.material, kid: $0.kid, algorithm: $0.algorithm))) }
        let manifest = String(decoding: try DocumentCoding.encoder(pretty: false).encode(ring), as: UTF8.self)
        return try await database.transaction { connection in
            let (found, _) = try await Self.manifest(on: connection, locking: true)
            let held =
                try await connection.query("SELECT count(*) FROM signing_keys", logger: connection.logger).collect().first?.decode(Int64.self) ?? 0
            guard found?.keys.isEmpty ?? true, held == 0 else {
                throw KeyStoreError(.badManifest, "the database already holds a key ring: import into one that has none")
            }
            try await connection.run(
                """
                INSERT INTO key_ring (id, manifest, generation) VALUES (1, \(manifest), 1)
                ON CONFLICT (id) DO UPDATE SET manifest = excluded.manifest, generation = key_ring.generation + 1
                """)
            for (kid, algorithm, bytes) in sealed {
                try await connection.run("INSERT INTO signing_keys (kid, alg, kek_id, sealed) VALUES (\(kid), \(algorithm), \(kek.id), \(bytes))")
            }
            return sealed.count
        }
    }
}
