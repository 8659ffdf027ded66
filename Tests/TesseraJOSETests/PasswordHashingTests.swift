import TesseraJOSE
import TesseraTestSupport
import Testing

@Suite("Password hashing")
struct PasswordHashingTests {
    /// RFC 7914's expected outputs, 64 bytes each, in hexadecimal.
    static let scrypt2 =
        "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162" + "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"
    static let scrypt3 =
        "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2" + "d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887"
    static let pbkdf2First =
        "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc" + "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
    static let pbkdf2Second =
        "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56" + "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d"

    @Test("RFC 7914 §12: scrypt test vectors 2 and 3, byte for byte")
    func rfc7914() throws {
        for (password, salt, logN, p, expected) in [
            ("password", "NaCl", 10, 16, Self.scrypt2), ("pleaseletmein", "SodiumChloride", 14, 1, Self.scrypt3),
        ] {
            let derived = try PasswordHashing.scrypt(password: Array(password.utf8), salt: Array(salt.utf8), logN: logN, r: 8, p: p, length: 64)
            #expect(derived == (try [UInt8](hex: expected)), "\(password)")
        }
    }

    @Test("RFC 7914 §11: PBKDF2-HMAC-SHA256 test vectors, byte for byte")
    func rfc7914PBKDF2() throws {
        for (password, salt, iterations, expected) in [("passwd", "salt", 1, Self.pbkdf2First), ("Password", "NaCl", 80_000, Self.pbkdf2Second)] {
            let derived = try PasswordHashing.pbkdf2SHA256(password: Array(password.utf8), salt: Array(salt.utf8), iterations: iterations, length: 64)
            #expect(derived == (try [UInt8](hex: expected)), "\(password)")
        }
        expectError(JOSEError.Code.invalidKey) { _ = try PasswordHashing.pbkdf2SHA256(password: [1], salt: [1], iterations: 0) }
        expectError(JOSEError.Code.invalidKey) { _ = try PasswordHashing.pbkdf2SHA256(password: [1], salt: [1], iterations: 10_000_001) }
    }

    @Test("scrypt parameters out of range are refused, not run")
    func bounds() {
        for (logN, r, p, length) in [(9, 8, 1, 32), (21, 8, 1, 32), (14, 0, 1, 32), (14, 8, 0, 32), (14, 8, 1, 8)] {
            expectError(JOSEError.Code.invalidKey) {
                _ = try PasswordHashing.scrypt(password: [1], salt: [1, 2], logN: logN, r: r, p: p, length: length)
            }
        }
        expectError(JOSEError.Code.invalidKey) { _ = try PasswordHashing.scrypt(password: [1], salt: [], logN: 14, r: 8, p: 1) }
    }
}
