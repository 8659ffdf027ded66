public import Foundation
public import TesseraJOSE

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
public import Darwin
#endif

/// The key folder (`keys/` by default): one file per private key (PKCS#8 PEM, or a JWK for HMAC
/// secrets), mode 0600, and the manifest `keyring.json`; the folder is 0700. Format: `keys/README.md`.
///
/// Every change is made under an exclusive `flock` (writers queue: two CLI runs at once, or the CLI
/// beside a running server, never lose an update), written to a temporary file created 0600 before any
/// byte is written, fsynced, renamed, and the folder fsynced. Readers need no lock: they only ever see a
/// whole manifest. A manifest that does not parse, or names a missing or unsafe file, is an error and
/// the previous good state (on disk, or in a running server) is kept.
public struct KeyStore: Sendable {
    public let path: String
    public static let manifestName = "keyring.json"
    static let lockName = ".lock"
    static let maximumFileSize = 1 << 20

    public init(path: String) {
        self.path = path
    }

    // MARK: Reading

    /// The validated key ring. Every key that may sign or is published must have its file, private to
    /// the owner; a revoked key's file is not needed.
    public func read() throws -> KeyRing {
        let directory = try open(create: false, locking: .none)
        return try read(in: directory)
    }

    /// The manifest as written, checked for nothing but its syntax: which keys it says are in which
    /// state, even when a key file is missing (a running server withdraws keys by it).
    func readManifest() throws -> KeyRing {
        try readManifest(in: try open(create: false, locking: .none))
    }

    private func readManifest(in directory: SecureDirectory) throws -> KeyRing {
        guard let bytes = try readFile(Self.manifestName, in: directory, requirePrivate: false) else {
            throw KeyStoreError(.noKeyRing, "\(path) has no \(Self.manifestName)")
        }
        do {
            return try Self.decoder.decode(KeyRing.self, from: Data(bytes))
        } catch {
            throw KeyStoreError(.badManifest, "\(path)/\(Self.manifestName) does not parse: \(Self.describe(error))")
        }
    }

    private func read(in directory: SecureDirectory) throws -> KeyRing {
        let ring = try readManifest(in: directory)
        try ring.validate()
        for key in ring.keys where key.state != .revoked {
            try checkKeyFile(key, in: directory)
        }
        return ring
    }

    /// The signing key of `entry`, bound to its algorithm and kid. Refuses a key file that group or
    /// others can read (as OpenSSH does), a symlink, or a key whose thumbprint is not its kid.
    public func signingKey(_ entry: KeyRingEntry) throws -> SigningKey {
        let directory = try open(create: false, locking: .none)
        return try signingKey(entry, in: directory)
    }

    /// A key's private material as its file holds it (checked to be that key): what a move of the key ring
    /// into a database copies.
    public func material(of entry: KeyRingEntry) throws -> [UInt8] {
        let directory = try open(create: false, locking: .none)
        _ = try signingKey(entry, in: directory)
        guard let bytes = try readFile(entry.file, in: directory, requirePrivate: true) else {
            throw KeyStoreError(.badKeyFile, "\(path)/\(entry.file) (key \(entry.kid)) is missing", kid: entry.kid)
        }
        return bytes
    }

    func signingKey(_ entry: KeyRingEntry, in directory: SecureDirectory) throws -> SigningKey {
        guard let algorithm = entry.algorithm else { throw KeyStoreError(.badManifest, "key \(entry.kid): unknown algorithm \(entry.alg)") }
        guard let bytes = try readFile(entry.file, in: directory, requirePrivate: true) else {
            throw KeyStoreError(.badKeyFile, "\(path)/\(entry.file) (key \(entry.kid)) is missing", kid: entry.kid)
        }
        return try KeyMaterial.signingKey(bytes, entry: entry, algorithm: algorithm, source: "\(path)/\(entry.file)")
    }

    /// The public JWK Set the server publishes: every pending, active and retiring asymmetric key.
    public func publishedJWKS(_ ring: KeyRing) throws -> JWKSet {
        let directory = try open(create: false, locking: .none)
        let keys = try ring.published.filter { $0.algorithm?.isSymmetric == false }.map { try signingKey($0, in: directory) }
        return try JWKSet(publicKeysOf: keys)
    }

    // MARK: Changing

    /// Runs `body` on the key ring under the folder's exclusive lock and writes the result durably if it
    /// changed. `create` makes the folder and an empty ring when there is none.
    public func update<T>(create: Bool = false, _ body: (inout KeyRing, KeyStoreWriter) throws -> T) throws -> T {
        let directory = try open(create: create, locking: .exclusiveWaiting)
        var ring: KeyRing
        do {
            ring = try read(in: directory)
        } catch let error as KeyStoreError where error.code == .noKeyRing && create {
            ring = KeyRing()
        }
        let before = ring
        let result = try body(&ring, KeyStoreWriter(directory: directory, store: self))
        try ring.validate()
        if ring != before {
            let bytes = try Self.encoder.encode(ring) + Data("\n".utf8)
            try wrap { try directory.writeAtomically(Self.manifestName) { try writeAll($0, [UInt8](bytes)) } }
        }
        return result
    }

    /// Generates a key, writes its file (0600, durable), and adds it to the ring as pending (or active).
    public func generate(_ algorithm: JWSAlgorithm, activate: Bool, now: Date) throws -> KeyRingEntry {
        try update(create: true) { ring, writer in
            try writer.addGeneratedKey(algorithm, activate: activate, now: now, to: &ring)
        }
    }

    /// Makes a key folder that holds no key yet private to its owner, and returns its former mode (nil
    /// when nothing changed).
    ///
    /// A fresh clone has a `keys/` folder (git tracks its README) made 0755 under the usual umask 022, and a
    /// key folder others may enter is refused. A folder that is ours, is no symlink and holds neither a
    /// manifest nor a key file has nothing to protect yet, so tightening it to 0700 before the first key is
    /// written is safe; a folder that already holds keys is never changed behind the operator's back.
    public func tightenIfHoldingNoKeys() throws -> UInt16? {
        let fd = openFolder(path)
        guard fd >= 0 else { return nil }  // missing, or no folder: `open` reports that in its own words
        defer { closeFile(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_uid == geteuid(), info.st_mode & 0o077 != 0 else { return nil }
        guard try !Self.entries(of: fd).contains(where: Self.isKeyMaterial) else { return nil }
        guard fchmod(fd, 0o700) == 0 else {
            throw KeyStoreError(.io, "cannot make \(path) private (chmod 700): \(String(cString: strerror(errno)))")
        }
        return UInt16(info.st_mode & 0o777)
    }

    /// The manifest, key files and the temporary files of either (a crash may leave one).
    static func isKeyMaterial(_ name: String) -> Bool {
        name == manifestName || [".pem", ".jwk", ".tmp"].contains { name.hasSuffix($0) }
    }

    /// The names in the folder open as `fd` (read through a duplicate, so `fd` stays open).
    private static func entries(of fd: Int32) throws -> [String] {
        let copy = dup(fd)
        guard copy >= 0, let directory = fdopendir(copy) else {
            if copy >= 0 { closeFile(copy) }
            throw KeyStoreError(.io, "cannot list the key folder: \(String(cString: strerror(errno)))")
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    // MARK: Helpers

    func open(create: Bool, locking: SecureDirectory.Locking) throws -> SecureDirectory {
        try wrap {
            if !create, !FileManager.default.fileExists(atPath: path) {
                throw KeyStoreError(.noKeyRing, "there is no key folder at \(path)")
            }
            return try SecureDirectory(
                path: path, create: create, lockName: Self.lockName, locking: locking,
                what: "the key ring", privateToOwner: true)
        }
    }

    private func checkKeyFile(_ key: KeyRingEntry, in directory: SecureDirectory) throws {
        var info = stat()
        guard fstatat(directory.fd, key.file, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw KeyStoreError(.badKeyFile, "\(path)/\(key.file) (key \(key.kid), \(key.state.rawValue)) is missing", kid: key.kid)
        }
        try checkPrivate(info, key.file)
    }

    private func checkPrivate(_ info: stat, _ name: String) throws {
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw KeyStoreError(.insecurePermissions, "\(path)/\(name) is not a regular file (a symlink?); key files must be plain files")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw KeyStoreError(
                .insecurePermissions,
                "\(path)/\(name) is readable or writable by group or others (mode \(String(info.st_mode & 0o777, radix: 8))); run: chmod 600 \(path)/\(name)"
            )
        }
    }

    /// The bytes of `name` (nil if it does not exist), read without following a symlink.
    func readFile(_ name: String, in directory: SecureDirectory, requirePrivate: Bool) throws -> [UInt8]? {
        let fd = openat(directory.fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            if errno == ELOOP { throw KeyStoreError(.insecurePermissions, "\(path)/\(name) is a symlink; key folder files must be plain files") }
            throw KeyStoreError(.io, "cannot open \(path)/\(name): \(String(cString: strerror(errno)))")
        }
        defer { closeFile(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw KeyStoreError(.io, "cannot stat \(path)/\(name)") }
        if requirePrivate { try checkPrivate(info, name) }
        guard Int(info.st_size) <= Self.maximumFileSize else { throw KeyStoreError(.badKeyFile, "\(path)/\(name) is larger than 1 MiB") }
        return try wrap { try readAll(fd, from: 0, maximum: Self.maximumFileSize) }
    }

    /// Runs file-layer work for the key store: an unsafe folder or file is `insecure_permissions`, the rest `io_error`.
    func wrap<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as FileError {
            throw KeyStoreError(error.code == .unsafe ? .insecurePermissions : .io, error.message)
        }
    }

    static let encoder = DocumentCoding.encoder(pretty: true)
    static let decoder = DocumentCoding.decoder

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "member \"\(key.stringValue)\" is missing"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "\(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)"
        case DecodingError.dataCorrupted(let context):
            return context.codingPath.isEmpty
                ? "not valid JSON" : "\(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)"
        default: return "\(error)"
        }
    }
}

/// Adds a newly generated key to a ring inside an update, wherever the ring keeps private keys (a key
/// file written first; or a sealed row written in the same transaction).
public protocol KeyAdding {
    func addGeneratedKey(_ algorithm: JWSAlgorithm, activate: Bool, now: Date, to ring: inout KeyRing) throws -> KeyRingEntry
}

/// What `KeyStore.update` hands its body for writing key files inside the lock.
public struct KeyStoreWriter: KeyAdding {
    let directory: SecureDirectory
    let store: KeyStore

    /// Generates a key of `algorithm`, writes its file first (a crash before the manifest is written
    /// leaves an orphan file, never a manifest entry without its key), and adds it to `ring`.
    public func addGeneratedKey(_ algorithm: JWSAlgorithm, activate: Bool, now: Date, to ring: inout KeyRing) throws -> KeyRingEntry {
        // Refused before a file is written, so a refusal leaves nothing behind.
        if activate { try ring.checkActivation(algorithm) }
        let (kid, bytes) = try KeyMaterial.generate(algorithm)
        let file = kid + (algorithm.isSymmetric ? ".jwk" : ".pem")
        try store.wrap { try directory.writeAtomically(file) { try writeAll($0, bytes) } }
        return try ring.add(kid: kid, algorithm: algorithm, file: file, now: now, activate: activate)
    }

    /// Deletes a key's file (after the manifest no longer needs it).
    public func removeFile(of entry: KeyRingEntry) {
        removeFile(named: entry.file)
    }

    /// Deletes a key file by name (an orphan). Names outside the folder are ignored.
    public func removeFile(named name: String) {
        guard KeyRing.isSafeFileName(name) else { return }
        directory.remove(name)
        try? directory.sync()
    }

    /// Key files in the folder that no manifest entry names (left by a crash between writing a key and
    /// the manifest, or between the manifest and deleting a pruned key's file).
    public func orphanFiles(_ ring: KeyRing) throws -> [String] {
        let named = Set(ring.keys.map(\.file))
        return try store.wrap { try directory.fileNames() }.filter {
            ($0.hasSuffix(".pem") || $0.hasSuffix(".jwk")) && !named.contains($0)
        }
    }
}

/// open(2) of a folder, never through a symlink (outside `KeyStore`, whose `open(create:locking:)` hides the C call).
private func openFolder(_ path: String) -> Int32 {
    open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
}

/// A signing key's private material as the key ring keeps it, wherever it keeps it (a file of the key folder,
/// or a sealed row of a database): PKCS#8 PEM for asymmetric keys, whose kid is their RFC 7638 thumbprint;
/// a private JWK for HMAC secrets, whose kid is random.
public enum KeyMaterial {
    /// A new key of `algorithm`: its kid and its private material.
    public static func generate(_ algorithm: JWSAlgorithm) throws -> (kid: String, material: [UInt8]) {
        if algorithm.isSymmetric {
            let kid = "hs-" + Base64URL.encode(try SecureRandom.bytes(count: 12))
            return (kid, Array(try SigningKey.generate(algorithm, keyID: kid).privateJWK().jsonString.utf8))
        }
        let key = try SigningKey.generate(algorithm)
        return (try key.thumbprint()!, Array(try key.pemRepresentation().utf8))
    }

    /// The signing key `material` holds for `entry`, refused unless it is that key (`source` names where it
    /// was read, for the message).
    public static func signingKey(_ material: [UInt8], entry: KeyRingEntry, algorithm: JWSAlgorithm, source: String) throws -> SigningKey {
        let text = String(decoding: material, as: UTF8.self)
        do {
            let key =
                algorithm.isSymmetric
                ? try SigningKey(jwk: try JWK(json: text), algorithm: algorithm)
                : try SigningKey(pemRepresentation: text, algorithm: algorithm, keyID: entry.kid)
            let matches = algorithm.isSymmetric ? key.keyID == entry.kid : try key.thumbprint() == entry.kid
            guard matches else { throw KeyStoreError(.badKeyFile, "\(source) holds a different key than kid \(entry.kid)", kid: entry.kid) }
            return key
        } catch let error as JOSEError {
            throw KeyStoreError(.badKeyFile, "\(source) (key \(entry.kid)) cannot be read: \(error.message)", kid: entry.kid)
        }
    }
}
