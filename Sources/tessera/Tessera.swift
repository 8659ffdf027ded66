public import ArgumentParser
import Foundation
public import TesseraJOSE
import TesseraVerifier

@main
struct Tessera: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tessera",
        abstract: "Tessera: an OAuth 2.0 token service and JWT access-token verifier.",
        version: "0.1.0",
        subcommands: [
            ServeCommand.self, VerifyCommand.self, JWKCommand.self, KeysCommand.self, TokenCommand.self, ClientsCommand.self, UsersCommand.self,
            StoreCommand.self, DatabaseCommand.self,
        ]
    )
}

extension JWSAlgorithm: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
    public static var allValueStrings: [String] { JWSAlgorithm.all.map(\.name) }
}

struct JWKCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jwk",
        abstract: "Inspect keys as JSON Web Keys.",
        subcommands: [Show.self]
    )

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the public JWK and RFC 7638 thumbprint of a key file (PEM or JWK). Never prints private members.",
            discussion: """
                FILE is a PKCS#8 private key (-----BEGIN PRIVATE KEY-----), a SubjectPublicKeyInfo public key \
                (-----BEGIN PUBLIC KEY-----) or a JWK. --alg binds the key to one algorithm; a JWK's own "alg" \
                is used when --alg is not given. Use - to read standard input.
                """
        )

        @Argument(help: "The key file, or - for standard input.")
        var file: String

        @Option(help: "The algorithm the key is for.")
        var alg: JWSAlgorithm?

        func run() throws {
            let data = file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try readFile(file)
            guard data.count <= 1 << 20 else { throw CLIError("\(file) is larger than 1 MiB: not a key file") }
            let text = String(decoding: data, as: UTF8.self)
            do {
                let key = try loadVerificationKey(text)
                guard let jwk = try key.publicJWK() else {
                    throw CLIError("\(file) is an HMAC secret: it has no public form to show")
                }
                print(jwk.jsonString)
                if let thumbprint = try key.thumbprint() { printError("thumbprint (RFC 7638, SHA-256): \(thumbprint)") }
            } catch let error as JOSEError {
                throw CLIError("\(file): \(error.message)")
            }
        }

        private func loadVerificationKey(_ text: String) throws -> VerificationKey {
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.hasPrefix("{") {
                let jwk = try JWK(json: trimmed)
                if jwk.containsPrivateMembers, jwk.keyType != "oct" {
                    return try SigningKey(jwk: jwk, algorithm: alg).verificationKey()
                }
                return try VerificationKey(jwk: jwk, algorithm: alg)
            }
            guard let alg else { throw ValidationError("a PEM key needs --alg (the key is bound to one algorithm)") }
            if trimmed.hasPrefix("-----BEGIN PUBLIC KEY-----") {
                return try VerificationKey(pemRepresentation: trimmed, algorithm: alg)
            }
            return try SigningKey(pemRepresentation: trimmed, algorithm: alg).verificationKey()
        }
    }
}

func readFile(_ path: String) throws -> Data {
    do {
        return try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
        throw CLIError("cannot read \(path): \((error as NSError).localizedDescription)")
    }
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// A failure the user can act on: printed as `Error: …`, exit status 1, without the usage text.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
