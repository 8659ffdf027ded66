import Foundation
import TesseraTestSupport
import Testing

@testable import TesseraJOSE

@Suite("AES-256-GCM for keys at rest")
struct AESGCMTests {
    /// The GCM specification's test case 16 (McGrew and Viega; NIST SP 800-38D's AES-256 example): 256-bit key,
    /// 96-bit IV, 60-byte plaintext, 20-byte associated data.
    static let key = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"
    static let nonce = "cafebabefacedbaddecaf888"
    static let plaintext =
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" + "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
    static let associatedData = "feedfacedeadbeeffeedfacedeadbeefabaddad2"
    static let ciphertext =
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa" + "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
    static let tag = "76fc6ece0f4e1768cddf8853bb2d551b"

    @Test("GCM test case 16: the ciphertext and tag byte for byte, and back")
    func vector() throws {
        let key = try [UInt8](hex: Self.key)
        let data = try [UInt8](hex: Self.associatedData)
        let sealed = try AESGCM.seal(try [UInt8](hex: Self.plaintext), key: key, nonce: try [UInt8](hex: Self.nonce), associatedData: data)
        #expect(sealed == (try [UInt8](hex: Self.nonce + Self.ciphertext + Self.tag)))
        #expect(try AESGCM.open(sealed, key: key, associatedData: data) == (try [UInt8](hex: Self.plaintext)))
    }

    @Test("Another key, other associated data, any changed byte, or a cut value: refused")
    func refusals() throws {
        let key = try SecureRandom.bytes(count: 32)
        let sealed = try AESGCM.seal(Array("-----BEGIN PRIVATE KEY-----".utf8), key: key, associatedData: Array("kid-1".utf8))
        #expect(throws: JOSEError.self) { try AESGCM.open(sealed, key: try SecureRandom.bytes(count: 32), associatedData: Array("kid-1".utf8)) }
        #expect(throws: JOSEError.self) { try AESGCM.open(sealed, key: key, associatedData: Array("kid-2".utf8)) }
        for index in [0, 12, sealed.count - 1] {
            var changed = sealed
            changed[index] ^= 1
            #expect(throws: JOSEError.self) { try AESGCM.open(changed, key: key, associatedData: Array("kid-1".utf8)) }
        }
        #expect(throws: JOSEError.self) { try AESGCM.open(Array(sealed.prefix(27)), key: key, associatedData: Array("kid-1".utf8)) }
        // Two seals of one plaintext differ (a fresh nonce each).
        #expect(try AESGCM.seal([1, 2, 3], key: key, associatedData: []) != AESGCM.seal([1, 2, 3], key: key, associatedData: []))
    }

    @Test("An independent peer (PyPI cryptography's AESGCM) opens what Tessera seals, and Tessera opens what it seals")
    func peer() async throws {
        let key = try SecureRandom.bytes(count: 32)
        let plaintext = try SecureRandom.bytes(count: 300)
        let data = Array("tessera signing key v1\u{0}kid\u{0}ES256".utf8)
        let ours = try AESGCM.seal(plaintext, key: key, associatedData: data)
        let hex = { (bytes: [UInt8]) in bytes.map { String(format: "%02x", $0) }.joined() }
        let script = """
            import sys
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            key, data, sealed, plaintext = (bytes.fromhex(a) for a in sys.argv[1:5])
            assert AESGCM(key).decrypt(sealed[:12], sealed[12:], data) == plaintext
            nonce = bytes(range(12))
            print((nonce + AESGCM(key).encrypt(nonce, plaintext, data)).hex())
            """
        let python = try await runChild("/usr/bin/env", ["python3", "-c", script, hex(key), hex(data), hex(ours), hex(plaintext)])
        #expect(python.status == 0, "\(python.err)")
        let theirs = try [UInt8](hex: python.out.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(try AESGCM.open(theirs, key: key, associatedData: data) == plaintext)
    }
}
