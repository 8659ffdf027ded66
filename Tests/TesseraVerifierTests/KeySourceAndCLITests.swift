import Foundation
import TesseraJOSE
import Testing

@testable import TesseraVerifier

@Suite("JWKS file source and tessera verify")
struct KeySourceAndCLITests {
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func write(_ keys: [SigningKey], to url: URL) throws {
        try Data(try JWKSet(publicKeysOf: keys).jsonString.utf8).write(to: url)
    }

    @Test("the file is reloaded when it changes; a broken change is ignored and the old keys stay")
    func fileReload() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("jwks.json")
        let first = try SigningKey.generate(.es256)
        let second = try SigningKey.generate(.eddsa)
        try Self.write([first], to: file)
        let events = EventLog()
        let source = try JWKSFileKeySource(path: file.path, checkInterval: 0, logger: events.record)
        #expect(try await source.currentKeys().keys.map(\.keyID) == [first.keyID])
        try Self.write([first, second], to: file)
        let factory = TokenFactory(key: second)
        let verifier = try AccessTokenVerifier(configuration: factory.configuration(), keySource: source)
        _ = try await verifier.verify(try factory.token())
        try Data("{not json".utf8).write(to: file)
        _ = try await verifier.verify(try factory.token())
        #expect(events.errors == 1)
        expectError(VerifierConfigurationError.Code.unreadableKeys) {
            try JWKSFileKeySource(path: directory.appendingPathComponent("missing.json").path)
        }
        expectError(VerifierConfigurationError.Code.noUsableKey) { try JWKSFileKeySource(path: file.path) }
    }

    static func run(_ arguments: [String], stdin: String? = nil) async throws -> (status: Int32, out: String, err: String) {
        try await runTessera(arguments, stdin: stdin)
    }

    @Test("tessera verify: exit 0 with the claims; exit 1 naming the failed check; token on stdin; JWKS over HTTP")
    func verifyCommand() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let key = try SigningKey.generate(.es256)
        let file = directory.appendingPathComponent("jwks.json")
        try Self.write([key], to: file)
        var factory = TokenFactory(key: key)
        factory.now = Int64(Date().timeIntervalSince1970)
        let token = try factory.token()
        let common = ["verify", "--jwks", file.path, "--issuer", factory.issuer, "--audience", factory.audience]
        let ok = try await Self.run(common + [token])
        #expect(ok.status == 0, "\(ok.err)")
        let claims = try JSONObject(parsing: ok.out.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(claims["sub"] == .string("alice"))
        let piped = try await Self.run(common, stdin: token + "\n")
        #expect(piped.status == 0, "\(piped.err)")
        // No token at all (nothing on standard input, or only white space): said so, not "malformed_token".
        for (arguments, input) in [(common, ""), (common + ["-"], " \n"), (common + [""], "")] {
            let none = try await Self.run(arguments, stdin: input)
            #expect(none.status == 1 && none.err.contains("no token given") && !none.err.contains("malformed"), "\(none)")
        }
        let expired = try await Self.run(common + [try factory.token { $0["exp"] = .number(JSONNumber(factory.now - 3600)) }])
        #expect(expired.status == 1 && expired.err.hasPrefix("expired:") && expired.out.isEmpty, "\(expired)")
        let wrongAudience = try await Self.run(["verify", "--jwks", file.path, "--issuer", factory.issuer, "--audience", "other", token])
        #expect(wrongAudience.status == 1 && wrongAudience.err.hasPrefix("invalid_audience:"), "\(wrongAudience)")
        let onlyRS = try await Self.run(common + ["--alg", "RS256", token])
        #expect(onlyRS.status == 1, "ES256 is not allowed when only RS256 is: \(onlyRS)")
        let endpoint = JWKSEndpoint(keys: [key])
        let (issuer, audience) = (factory.issuer, factory.audience)
        try await endpoint.run { base in
            let remote = try await Self.run([
                "verify", "--jwks", base.appendingPathComponent("jwks.json").absoluteString,
                "--issuer", issuer, "--audience", audience, token,
            ])
            #expect(remote.status == 0, "\(remote.err)")
        }
    }
}
