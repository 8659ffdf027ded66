// An example resource server protected by Tessera's verifier; the README's "A resource server, end to
// end" runs it against `tessera serve`.
//
//   TESSERA_ISSUER=http://127.0.0.1:8080 TESSERA_AUDIENCE=notes-api swift run ExampleResourceServer
//
// Keys come from the issuer's RFC 8414 metadata (or TESSERA_JWKS_URL). Routes:
//   GET  /health        public
//   GET  /me            any valid access token: who is calling
//   GET  /notes         scope notes:read
//   POST /notes         scope notes:write
import Foundation
import Hummingbird
import Logging
import TesseraHummingbird
import TesseraVerifier

/// The routes of the example, built around a configured verifier (also used by the end-to-end test).
func buildResourceServer(
    verifier: AccessTokenVerifier, configuration: ApplicationConfiguration,
    logger: Logger = Logger(label: "example-resource-server")
) -> some ApplicationProtocol {
    let router = Router(context: BearerRequestContext.self)
    router.get("/health") { _, _ in "ok" }
    let protected = router.group().add(middleware: BearerTokenMiddleware(verifier: verifier, realm: "notes"))
    protected.get("/me") { _, context -> Response in
        let token = context.accessToken!
        return json(
            JSONObject([
                "sub": .string(token.subject), "client_id": .string(token.clientID),
                "scope": .string(token.scopes.sorted().joined(separator: " ")),
            ]).jsonString)
    }
    protected.group("notes").add(middleware: RequireScopesMiddleware("notes:read", realm: "notes"))
        .get { _, _ in json(JSONValue.array([.string("buy milk")]).jsonString) }
    protected.group("notes").add(middleware: RequireScopesMiddleware("notes:write", realm: "notes"))
        .post { _, _ in Response(status: .created) }
    return Application(router: router, configuration: configuration, logger: logger)
}

/// A JSON answer, written by TesseraJOSE's JSON writer, never by string interpolation: a subject may hold any
/// character (quotes, backslashes, control characters), and the writer escapes each.
func json(_ text: String) -> Response {
    Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
}

@main
struct ExampleResourceServer {
    static func main() async throws {
        let environment = ProcessInfo.processInfo.environment
        let issuer = environment["TESSERA_ISSUER"] ?? "http://127.0.0.1:8080"
        let audience = environment["TESSERA_AUDIENCE"] ?? "notes-api"
        let port = Int(environment["PORT"] ?? "") ?? 8081
        let logger = Logger(label: "example-resource-server")
        let keys: any KeySource
        if let jwks = environment["TESSERA_JWKS_URL"], let url = URL(string: jwks) {
            keys = RemoteJWKSKeySource(jwksURL: url, logger: keySourceLogger(logger))
        } else {
            keys = try RemoteJWKSKeySource(issuer: issuer, logger: keySourceLogger(logger))
        }
        let verifier = try AccessTokenVerifier(configuration: .init(issuer: issuer, audience: audience), keySource: keys)
        let app = buildResourceServer(verifier: verifier, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: logger)
        try await app.runService()
    }
}
