import Foundation
import Testing

@testable import TesseraJOSE

@Suite("Sharing keys between threads")
struct ConcurrencyTests {
    /// One key and one key set, used by many tasks at once: every token verifies, every forgery fails.
    /// (The HMAC key duplicates one prepared libcrypto context per MAC; EVP_PKEY is shared read-only.)
    @Test("concurrent signing and verification with one shared key", arguments: [JWSAlgorithm.hs256, .es256, .eddsa, .ps256])
    func sharedKey(_ algorithm: JWSAlgorithm) async throws {
        let key = try SigningKey.generate(algorithm)
        let signer = JWSSigner(key: key, type: "at+jwt")
        let keys = try VerificationKeySet([try key.verificationKey()])
        let failures = try await withThrowingTaskGroup(of: Int.self) { group in
            for task in 0..<8 {
                group.addTask {
                    var failures = 0
                    for round in 0..<100 {
                        let token = try signer.sign(claims: JSONObject(["sub": .string("t\(task)-\(round)")]))
                        let verified = try UnverifiedJWS(parsing: token).verified(using: keys)
                        if try verified.payloadObject()["sub"] != .string("t\(task)-\(round)") { failures += 1 }
                        if (try? UnverifiedJWS(parsing: tamper(token, at: token.count - 2)).verified(using: keys)) != nil { failures += 1 }
                    }
                    return failures
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(failures == 0)
    }

    @Test("large objects stay correct past the hash-index threshold, duplicates still caught")
    func largeObjects() throws {
        let members = (0..<5000).map { #""k\#($0)":\#($0)"# }.joined(separator: ",")
        let object = try JSONObject(parsing: "{" + members + "}")
        #expect(object.count == 5000 && object["k4999"]?.numberValue?.int64Value == 4999 && object["k5000"] == nil)
        expectError(JOSEError.Code.invalidJSON) { try JSONObject(parsing: "{" + members + #","k17":1}"#) }
        var copy = object
        copy["k3"] = nil
        #expect(copy.count == 4999 && copy["k4"] != nil && copy["k3"] == nil && copy["k4999"] != nil)
        #expect(copy != object)
    }
}
