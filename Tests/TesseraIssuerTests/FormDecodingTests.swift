import Foundation
import TesseraJOSE
import TesseraTestSupport
import Testing

@testable import TesseraIssuer

/// The byte-level decoders of the token endpoint (issue 19: Foundation's string operations were a tenth of a
/// request) against Foundation's own, which they replaced, over many random inputs.
@Suite("Form and HTTP Basic decoding, byte by byte")
struct FormDecodingTests {
    /// A random string from the bytes that matter: `+`, `%`, hex digits, `&`, `=`, `:`, spaces, ASCII, and
    /// multi-byte characters (some a combining mark).
    static func randomText(_ generator: inout some RandomNumberGenerator) -> String {
        let pieces = ["+", "%", "%2", "%41", "%e2%82%ac", "%C3", "%zz", "a", "Z", "0", "f", "F", " ", "&", "=", ":", "é", "e\u{301}", "€", "~"]
        return (0..<Int.random(in: 0...12, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined()
    }

    @Test("formDecoded agrees with Foundation's + and percent decoding on 4,000 random values, nil for nil")
    func formDecodingMatchesFoundation() async throws {
        // On a thread of its own: a loop of Foundation calls must not hold one of the suite's shared threads.
        let mismatches = try await onOwnThread { () -> [[UInt8]] in
            var generator = SystemRandomNumberGenerator()
            var found: [[UInt8]] = []
            for _ in 0..<4_000 {
                let text = Self.randomText(&generator)
                let foundation = text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
                if ClientAuthenticator.formDecoded(text) != foundation { found.append(Array(text.utf8)) }
            }
            return found
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
    }

    @Test("HTTP Basic: the same credentials as Foundation's base64 decoding for 1,000 random pairs; what Foundation refuses is refused")
    func basicMatchesFoundation() async throws {
        let mismatches = try await onOwnThread { () -> [String] in
            var generator = SystemRandomNumberGenerator()
            var found: [String] = []
            for _ in 0..<1_000 {
                let (id, secret) = (Self.randomText(&generator), Self.randomText(&generator))
                let encoded = Data("\(id):\(secret)".utf8).base64EncodedString()
                let decoded = try? ClientAuthenticator.basicCredentials(header: "Basic " + encoded)
                let expected: BasicCredentials? = {
                    guard let text = String(data: Data(base64Encoded: encoded)!, encoding: .utf8), let colon = text.firstIndex(of: ":"),
                        let id = text[..<colon].replacingOccurrences(of: "+", with: " ").removingPercentEncoding,
                        let secret = text[text.index(after: colon)...].replacingOccurrences(of: "+", with: " ").removingPercentEncoding
                    else { return nil }
                    return BasicCredentials(id: id, secret: secret)
                }()
                if decoded != expected { found.append("\(id) : \(secret)") }
            }
            return found
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
        let valid = Data("svc:pw".utf8).base64EncodedString()
        #expect(try ClientAuthenticator.basicCredentials(header: "bAsIc \t" + valid + " ") == BasicCredentials(id: "svc", secret: "pw"))
        for header in [
            "Bearer " + valid, "Basic", "Basic ", "Basicx " + valid, "Basic " + valid.dropLast(), "Basic " + valid + "=",
            "Basic c3Zj-nB3", "Basic c3Zj_nB3", "Basic c3=jOnB3", "Basic " + Data("no colon".utf8).base64EncodedString(),
            "Basic " + Data([0x61, 0x3A, 0xFF]).base64EncodedString(), "Basic " + Data("a%2:b".utf8).base64EncodedString(),
        ] {
            #expect(throws: OAuthError.self, "\(header)") { try ClientAuthenticator.basicCredentials(header: header) }
        }
    }

    @Test("Form bodies split on the bytes & and =: a combining mark after & does not join two parameters; repeats are refused")
    func formSplitsOnBytes() throws {
        let parameters = try TokenRequest.parseForm("a=1&\u{301}b=2&c&d=&=e&&f=x%3Dy+z")
        #expect(parameters == ["a": "1", "\u{301}b": "2", "c": "", "d": "", "": "e", "f": "x=y z"])
        #expect(throws: OAuthError.self) { try TokenRequest.parseForm("a=1&a=2") }
        #expect(throws: OAuthError.self) { try TokenRequest.parseForm("a=%") }
    }

    @Test("client_id in the body and the Basic user name are compared byte for byte: two spellings of é are two clients")
    func clientIDsByBytes() throws {
        let registry = ClientRegistry(clients: [
            Client(
                id: "caf\u{E9}", type: .confidential, secretDigest: Client.digest(ofSecret: "s"), grants: [.clientCredentials], scopes: [],
                defaultScopes: [], audience: "api", created: Date())
        ])
        let header = "Basic " + Data("caf%C3%A9:s".utf8).base64EncodedString()
        let authenticator = ClientAuthenticator(registry: registry)
        #expect(try authenticator.authenticate(authorization: header, clientID: "caf\u{E9}", clientSecret: nil).id == "caf\u{E9}")
        #expect(throws: OAuthError.self) { try authenticator.authenticate(authorization: header, clientID: "cafe\u{301}", clientSecret: nil) }
        let request = TokenRequest(parameters: [:], authorization: header)
        #expect(ClientAuthenticator.claimedClientID(basic: request.basicCredentials, clientID: nil) == "caf\u{E9}")
    }
}
