import Foundation
import TesseraJOSE
import TesseraTestSupport
import Testing

@testable import TesseraIssuer

@Suite("Key-encryption key: private keys sealed at rest (issue 16)")
struct KeyEncryptionKeyTests {
    @Test("tessera keys new-kek writes 32 bytes, mode 0600, and never overwrites; the file reads back as the same key")
    func create() async throws {
        let folder = try TemporaryDirectory("tessera-kek")
        defer { folder.remove() }
        let path = folder.appending("kek")
        let made = try await runTessera(["keys", "new-kek", "--out", path])
        #expect(made.status == 0, "\(made.err)")
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600 && (attributes[.size] as? Int) == 32)
        let key = try KeyEncryptionKey(file: path)
        #expect(made.out.contains(key.id) && key.id.count == 16)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        let again = try await runTessera(["keys", "new-kek", "--out", path])
        #expect(again.status != 0 && again.err.contains("never overwritten"), "\(again.err)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
    }

    @Test("A key file that is readable by others, a symlink, missing, or not 32 bytes is refused, saying why")
    func refusedFiles() throws {
        let folder = try TemporaryDirectory("tessera-kek")
        defer { folder.remove() }
        let path = folder.appending("kek")
        try KeyEncryptionKey.create(at: path)
        chmod(path, 0o644)
        #expect(throws: KeyStoreError.self) { try KeyEncryptionKey(file: path) }
        chmod(path, 0o600)
        symlink(path, folder.appending("link"))
        #expect(throws: KeyStoreError.self) { try KeyEncryptionKey(file: folder.appending("link")) }
        #expect(throws: KeyStoreError.self) { try KeyEncryptionKey(file: folder.appending("missing")) }
        let short = folder.appending("short")
        #expect(FileManager.default.createFile(atPath: short, contents: Data(repeating: 7, count: 31), attributes: [.posixPermissions: 0o600]))
        #expect(throws: KeyStoreError.self) { try KeyEncryptionKey(file: short) }
        let long = folder.appending("long")
        #expect(FileManager.default.createFile(atPath: long, contents: Data(repeating: 7, count: 33), attributes: [.posixPermissions: 0o600]))
        #expect(throws: KeyStoreError.self) { try KeyEncryptionKey(file: long) }
    }

    @Test("A sealed private key opens only under its key, for its own kid and algorithm; a wrong key is named")
    func sealing() throws {
        let folder = try TemporaryDirectory("tessera-kek")
        defer { folder.remove() }
        let kek = try KeyEncryptionKey.create(at: folder.appending("one"))
        let other = try KeyEncryptionKey.create(at: folder.appending("two"))
        #expect(kek.id != other.id)
        let pem = Array("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n".utf8)
        let sealed = try kek.seal(pem, kid: "kid-a", algorithm: "ES256")
        #expect(!String(decoding: sealed, as: UTF8.self).contains("PRIVATE KEY"))
        #expect(try kek.unseal(sealed, kid: "kid-a", algorithm: "ES256") == pem)
        // Moved to another row (another kid, or the same kid under another algorithm): refused.
        #expect(throws: KeyStoreError.self) { try kek.unseal(sealed, kid: "kid-b", algorithm: "ES256") }
        #expect(throws: KeyStoreError.self) { try kek.unseal(sealed, kid: "kid-a", algorithm: "RS256") }
        do {
            _ = try other.unseal(sealed, kid: "kid-a", algorithm: "ES256")
            Issue.record("opened under another key-encryption key")
        } catch let error as KeyStoreError {
            #expect(error.code == .badKeyEncryptionKey && error.message.contains(other.id) && !error.message.contains("PRIVATE"))
        }
    }
}
