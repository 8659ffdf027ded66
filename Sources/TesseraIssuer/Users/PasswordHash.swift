import Foundation
import TesseraJOSE

/// A stored password hash, parsed: which function, its parameters, and the expected output.
struct PasswordHash {
    enum Function {
        case scrypt(logN: Int, r: Int, p: Int)
        case pbkdf2SHA256(iterations: Int)
    }

    /// OWASP's 2023 figure for PBKDF2-HMAC-SHA-256 is 600,000; older Django releases used fewer, so imports
    /// accept down to 100,000 (Django 2.1's default was 120,000).
    static let minimumPBKDF2Iterations = 100_000

    let function: Function
    let salt: [UInt8]
    let expected: [UInt8]

    init?(_ text: String) {
        let parts = text.split(separator: "$", omittingEmptySubsequences: false).map(String.init)
        switch parts.first {
        case "scrypt":
            guard parts.count == 6, let logN = Int(parts[1]), let r = Int(parts[2]), let p = Int(parts[3]),
                (10...20).contains(logN), (1...32).contains(r), (1...16).contains(p),
                let salt = try? Base64URL.decode(parts[4]), !salt.isEmpty,
                let expected = try? Base64URL.decode(parts[5]), (16...64).contains(expected.count)
            else { return nil }
            self.init(function: .scrypt(logN: logN, r: r, p: p), salt: salt, expected: expected)
        case "pbkdf2_sha256":
            // Django: the salt is used as its text; the hash is standard base64 of 32 bytes.
            guard parts.count == 4, let iterations = Int(parts[1]), (Self.minimumPBKDF2Iterations...10_000_000).contains(iterations),
                !parts[2].isEmpty, parts[2].utf8.count <= 128, let expected = Data(base64Encoded: parts[3]), expected.count == 32
            else { return nil }
            self.init(function: .pbkdf2SHA256(iterations: iterations), salt: Array(parts[2].utf8), expected: Array(expected))
        default:
            return nil
        }
    }

    init(function: Function, salt: [UInt8], expected: [UInt8]) {
        self.function = function
        self.salt = salt
        self.expected = expected
    }

    func derive(_ password: [UInt8]) throws -> [UInt8] {
        switch function {
        case .scrypt(let logN, let r, let p):
            return try PasswordHashing.scrypt(password: password, salt: salt, logN: logN, r: r, p: p, length: expected.count)
        case .pbkdf2SHA256(let iterations):
            return try PasswordHashing.pbkdf2SHA256(password: password, salt: salt, iterations: iterations, length: expected.count)
        }
    }
}
