import Foundation
import TesseraJOSE

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The key that encrypts signing keys at rest when they live in a database (issue 16): 32 random bytes in a
/// file of its own, mode 0600, that never enters the database. Private keys are sealed with AES-256-GCM under
/// it, the key id and algorithm as associated data, so a ciphertext moved to another key's row does not open.
public struct KeyEncryptionKey: Sendable {
    private let secret: [UInt8]
    /// Names this key without revealing it (HMAC-SHA256 of a label, first 8 bytes, hex): stored beside each
    /// sealed key, so a wrong key file is reported as such before anything is tried.
    public let id: String

    init(secret: [UInt8]) {
        self.secret = secret
        id = Digest.hmacSHA256(key: secret, Array("tessera key-encryption-key id".utf8)).prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    /// Reads a key file: exactly 32 bytes, a regular file (no symlink), readable by its owner only.
    public init(file path: String) throws {
        var status = stat()
        guard lstat(path, &status) == 0 else {
            throw KeyStoreError(.badKeyEncryptionKey, "no key-encryption key at \(path): create one with tessera keys new-kek --out \(path)")
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw KeyStoreError(.insecurePermissions, "\(path) is not a regular file (a symlink is refused)")
        }
        guard status.st_mode & 0o077 == 0 else {
            throw KeyStoreError(
                .insecurePermissions, "\(path) is readable by others (mode \(String(status.st_mode & 0o777, radix: 8))): chmod 600 \(path)")
        }
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw KeyStoreError(.io, "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 33)
        let count = read(fd, &bytes, bytes.count)
        guard count == AESGCM.keyLength else {
            throw KeyStoreError(
                .badKeyEncryptionKey, "\(path) is not a key-encryption key: it must hold exactly 32 bytes (tessera keys new-kek makes one)")
        }
        self.init(secret: Array(bytes[0..<AESGCM.keyLength]))
    }

    /// Writes a new key file (refusing to replace one): 0600, written and synced before its folder is.
    @discardableResult
    public static func create(at path: String) throws -> KeyEncryptionKey {
        let secret = try SecureRandom.bytes(count: AESGCM.keyLength)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let reason = errno == EEXIST ? "it exists (a key-encryption key is never overwritten)" : String(cString: strerror(errno))
            throw KeyStoreError(.io, "cannot create \(path): \(reason)")
        }
        defer { close(fd) }
        guard write(fd, secret, secret.count) == secret.count, fsync(fd) == 0 else {
            unlink(path)
            throw KeyStoreError(.io, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
        let folder = open(
            (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent, O_RDONLY | O_CLOEXEC)
        if folder >= 0 {
            fsync(folder)
            close(folder)
        }
        return KeyEncryptionKey(secret: secret)
    }

    /// What a sealed key is bound to: its key id and algorithm.
    static func associatedData(kid: String, algorithm: String) -> [UInt8] {
        Array("tessera signing key v1".utf8) + [0] + Array(kid.utf8) + [0] + Array(algorithm.utf8)
    }

    /// Seals a private key (its PEM) for the row of `kid`.
    public func seal(_ privateKey: [UInt8], kid: String, algorithm: String) throws -> [UInt8] {
        try AESGCM.seal(privateKey, key: secret, associatedData: Self.associatedData(kid: kid, algorithm: algorithm))
    }

    /// Decrypts what `seal` made for `kid`; a wrong key, another row's ciphertext or a changed byte is refused.
    public func unseal(_ sealed: [UInt8], kid: String, algorithm: String) throws -> [UInt8] {
        do {
            return try AESGCM.open(sealed, key: secret, associatedData: Self.associatedData(kid: kid, algorithm: algorithm))
        } catch {
            throw KeyStoreError(
                .badKeyEncryptionKey, "the private key of \(kid) does not open under key-encryption key \(id) (another key's ciphertext, or changed)")
        }
    }
}
