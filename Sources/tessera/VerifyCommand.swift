import ArgumentParser
import Foundation
import TesseraJOSE
import TesseraVerifier

/// `tessera verify`: checks an access token the way a resource server linking TesseraVerifier would.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify a JWT access token (RFC 9068) against a JWK Set.",
        discussion: """
            On success prints the claims as JSON and exits 0. Otherwise prints the name of the failed check \
            (e.g. expired, invalid_signature, invalid_audience) and why on standard error, and exits 1.
            The token is read from the argument, or from standard input when it is omitted or -.
            """
    )

    @Option(help: "The issuer's JWK Set: a file, or an http(s) URL.")
    var jwks: String

    @Option(help: "The expected issuer (iss must equal it exactly).")
    var issuer: String

    @Option(help: "An accepted audience (repeatable).")
    var audience: [String]

    @Option(help: "Clock leeway in seconds.")
    var leeway: Double = 60

    @Option(name: .customLong("alg"), help: "An allowed algorithm (repeatable; default: every asymmetric one).")
    var algorithms: [JWSAlgorithm] = []

    @Argument(help: "The access token, or - for standard input.")
    var token: String?

    static let noToken = "no token given: pass it as the last argument, or on standard input with -"

    func run() async throws {
        let raw: String
        if let token, token != "-" {
            raw = token
        } else {
            // A terminal on standard input means no token was piped in: say so instead of waiting.
            if token == nil, isatty(STDIN_FILENO) == 1 { throw CLIError(Self.noToken) }
            let input = FileHandle.standardInput.readData(ofLength: 1 << 20)
            raw = String(decoding: input, as: UTF8.self)
        }
        guard !raw.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw CLIError(Self.noToken) }
        var configuration = AccessTokenVerifier.Configuration(issuer: issuer, audiences: Set(audience))
        configuration.leeway = leeway
        if !algorithms.isEmpty { configuration.allowedAlgorithms = Set(algorithms) }
        let source: any KeySource
        if jwks.hasPrefix("https://") || jwks.hasPrefix("http://") {
            guard let url = URL(string: jwks) else { throw CLIError("--jwks is not a valid URL") }
            source = RemoteJWKSKeySource(jwksURL: url, allowedAlgorithms: configuration.allowedAlgorithms) { event in
                if event.level == .error || event.level == .warning { printError("jwks: \(event.message)") }
            }
        } else {
            do {
                source = try JWKSFileKeySource(path: jwks, allowedAlgorithms: configuration.allowedAlgorithms)
            } catch {
                throw CLIError("\(error)")
            }
        }
        let verifier: AccessTokenVerifier
        do {
            verifier = try AccessTokenVerifier(configuration: configuration, keySource: source)
        } catch {
            throw CLIError("\(error)")
        }
        do {
            let verified = try await verifier.verify(raw.trimmingCharacters(in: .whitespacesAndNewlines))
            print(verified.claims.jsonString)
        } catch let error as TokenVerificationError {
            printError("\(error.code): \(error.message)")
            throw ExitCode(1)
        }
    }
}
