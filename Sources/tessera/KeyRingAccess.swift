import ArgumentParser
import Foundation
import TesseraIssuer
import TesseraJOSE
import TesseraPostgres

/// What the `keys` commands change: the key folder, or, with `--database`, the key ring in PostgreSQL, its
/// private keys sealed under `--key-encryption-key-file` (issue 16). The rules are `KeyRing`'s either way.
protocol KeyRingAccess: Sendable {
    func read() async throws -> KeyRing
    func update<T: Sendable>(create: Bool, _ body: @escaping @Sendable (inout KeyRing, any KeyAdding) throws -> T) async throws -> T
    func publishedJWKS(_ ring: KeyRing) async throws -> JWKSet
    func signingKey(_ entry: KeyRingEntry) async throws -> SigningKey
    /// Deletes what revoked or pruned keys leave behind: their files, and orphans of an earlier crash (the
    /// database drops a key's row in the transaction that stops needing it).
    func removeLeftovers(_ entries: [KeyRingEntry]) async throws
}

struct FolderKeyRing: KeyRingAccess {
    let store: KeyStore

    func read() async throws -> KeyRing { try store.read() }

    func update<T: Sendable>(create: Bool, _ body: @escaping @Sendable (inout KeyRing, any KeyAdding) throws -> T) async throws -> T {
        try store.update(create: create) { ring, writer in try body(&ring, writer) }
    }

    func publishedJWKS(_ ring: KeyRing) async throws -> JWKSet { try store.publishedJWKS(ring) }

    func signingKey(_ entry: KeyRingEntry) async throws -> SigningKey { try store.signingKey(entry) }

    func removeLeftovers(_ entries: [KeyRingEntry]) async throws {
        try store.update { ring, writer in
            for entry in entries { writer.removeFile(of: entry) }
            for orphan in try writer.orphanFiles(ring) { writer.removeFile(named: orphan) }
        }
    }
}

struct DatabaseKeyRing: KeyRingAccess {
    let ring: PostgresKeyRing

    func read() async throws -> KeyRing { try await ring.read() }

    func update<T: Sendable>(create: Bool, _ body: @escaping @Sendable (inout KeyRing, any KeyAdding) throws -> T) async throws -> T {
        try await ring.update(create: create) { keys, generator in try body(&keys, generator) }
    }

    func publishedJWKS(_ keys: KeyRing) async throws -> JWKSet { try await ring.publishedJWKS(keys) }

    func signingKey(_ entry: KeyRingEntry) async throws -> SigningKey { try await ring.signingKey(entry) }

    func removeLeftovers(_ entries: [KeyRingEntry]) async throws {}
}

extension KeysOptions {
    /// Runs `body` on the key ring `--database` (with `--key-encryption-key-file`) or `--keys` names; errors
    /// become messages for the user.
    func withRing<T>(_ body: (any KeyRingAccess) async throws -> T) async throws -> T {
        guard database.resolved != nil else { return try await keyStoreCall { try await body(FolderKeyRing(store: store)) } }
        return try await withDatabaseRing { ring in try await body(DatabaseKeyRing(ring: ring)) }
    }

    /// The database's key ring under the key-encryption key named by `--key-encryption-key-file`.
    func withDatabaseRing<T>(_ body: (PostgresKeyRing) async throws -> T) async throws -> T {
        guard let file = keyEncryptionKeyFile ?? ProcessInfo.processInfo.environment["TESSERA_KEY_ENCRYPTION_KEY_FILE"] else {
            throw CLIError("--database keeps private keys sealed: give --key-encryption-key-file FILE (tessera keys new-kek --out FILE makes one)")
        }
        let kek = try keyStoreCall { try KeyEncryptionKey(file: file) }
        return try await withDatabase(database) { pool in
            try await Schema.check(pool)
            return try await keyStoreCall { try await body(PostgresKeyRing(database: pool, kek: kek)) }
        }
    }
}

/// `keyStoreCall` for the commands that reach their key ring asynchronously.
func keyStoreCall<T>(_ body: () async throws -> T) async throws -> T {
    do { return try await body() } catch let error as KeyStoreError { throw CLIError(Hint.message(error)) } catch let error as JOSEError {
        throw CLIError(error.message)
    }
}
