import ArgumentParser
import Foundation
import TesseraIssuer
import TesseraJOSE

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Mint tokens for testing and scripts.",
        subcommands: [Mint.self]
    )

    struct Mint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print an RFC 9068 access token signed with the active key.",
            discussion: "The lifetime may not exceed the key ring's max_token_lifetime: a longer-lived token could outlive its key's publication."
        )

        @OptionGroup var keys: KeysOptions
        @Option(help: "The subject (sub).") var sub: String
        @Option(name: .customLong("client-id"), help: "The client the token is issued to (client_id).") var clientID: String
        @Option(help: "Space-separated scopes.") var scope: String = ""
        @Option(help: "The audience (aud): the resource server's identifier.") var aud: String
        @Option(help: "Lifetime in seconds.") var ttl: Int = 600
        @Option(help: "The issuer (iss).") var issuer = "http://127.0.0.1:8080"
        @Option(help: "The algorithm of the active key to sign with (needed when several are active).") var alg: JWSAlgorithm?

        func run() async throws {
            let token: String = try await keys.withRing { access in
                let ring = try await access.read()
                guard ttl > 0, ttl <= ring.policy.maxTokenLifetime else {
                    throw CLIError("--ttl must be between 1 and the key ring's max_token_lifetime (\(ring.policy.maxTokenLifetime) s)")
                }
                let candidates = ring.activeKeys.filter { entry in alg.map { $0.name == entry.alg } ?? true }
                guard candidates.count == 1, let entry = candidates.first else {
                    throw CLIError(
                        candidates.isEmpty
                            ? "no active key\(alg.map { " for \($0.name)" } ?? ""); `tessera keys generate --alg ES256 --activate`"
                            : "several keys are active (\(candidates.map(\.alg).joined(separator: ", "))); give --alg")
                }
                let now = Int64(commandNow().timeIntervalSince1970)
                var claims = JSONObject([
                    "iss": .string(issuer), "sub": .string(sub), "aud": .string(aud),
                    "exp": .number(JSONNumber(now + Int64(ttl))), "iat": .number(JSONNumber(now)),
                    "jti": .string(Base64URL.encode(try SecureRandom.bytes(count: 16))), "client_id": .string(clientID),
                ])
                if !scope.isEmpty { claims["scope"] = .string(scope) }
                return try JWSSigner(key: try await access.signingKey(entry), type: "at+jwt").sign(claims: claims)
            }
            print(token)
        }
    }
}
