import Testing

@testable import TesseraJOSE

@Suite("RFC 7515 §2 / RFC 4648 §5: base64url")
struct Base64URLTests {
    @Test("RFC 4648 §10 test vectors, unpadded")
    func rfc4648Vectors() throws {
        let cases = ["": "", "f": "Zg", "fo": "Zm8", "foo": "Zm9v", "foob": "Zm9vYg", "fooba": "Zm9vYmE", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in cases {
            #expect(Base64URL.encode(Array(plain.utf8)) == encoded)
            #expect(try Base64URL.decode(encoded) == Array(plain.utf8))
        }
    }

    @Test("round trip of every length 0…300 with all byte values")
    func roundTrip() throws {
        for length in 0...300 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ length) }
            let encoded = Base64URL.encode(bytes)
            #expect(encoded.utf8.count == Base64URL.encodedCount(length))
            #expect(!encoded.contains("=") && !encoded.contains("+") && !encoded.contains("/"))
            #expect(try Base64URL.decode(encoded) == bytes)
        }
    }

    @Test("URL-safe alphabet: 0xFB 0xFF encodes with - and _")
    func alphabet() throws {
        #expect(Base64URL.encode([0xFB, 0xFF]) == "-_8")
        #expect(try Base64URL.decode("-_8") == [0xFB, 0xFF])
    }

    @Test("padding is rejected")
    func padding() {
        expectError(JOSEError.Code.invalidBase64URL) { try Base64URL.decode("Zg==") }
        expectError(JOSEError.Code.invalidBase64URL) { try Base64URL.decode("Zm8=") }
    }

    @Test("characters outside the alphabet are rejected: + / space newline ? !")
    func foreignCharacters() {
        for text in ["+_8A", "/_8A", "Zm 9v", "Zm9v\n", "Zm9?", "Zm9!", "Zm9v\u{00e9}"] {
            expectError(JOSEError.Code.invalidBase64URL, "\(text)") { try Base64URL.decode(text) }
        }
    }

    @Test("RFC 4648 §3.5: non-zero trailing bits are rejected (one spelling per byte string)")
    func trailingBits() {
        #expect(throws: Never.self) { try Base64URL.decode("Zg") }
        expectError(JOSEError.Code.invalidBase64URL) { try Base64URL.decode("Zh") }
        #expect(throws: Never.self) { try Base64URL.decode("Zm8") }
        expectError(JOSEError.Code.invalidBase64URL) { try Base64URL.decode("Zm9") }
    }

    @Test("a length of 1 mod 4 is rejected")
    func impossibleLength() {
        expectError(JOSEError.Code.invalidBase64URL) { try Base64URL.decode("Z") }
        expectError(JOSEError.Code.invalidBase64URL) { try Base64URL.decode("Zm9vY") }
    }
}
