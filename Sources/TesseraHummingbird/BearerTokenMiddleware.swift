import Foundation
import HTTPTypes
public import Hummingbird
public import Logging
import NIOCore
public import TesseraVerifier

/// A request context that can carry the verified access token.
public protocol AccessTokenRequestContext: RequestContext {
    var accessToken: AccessToken? { get set }
}

/// A ready-made context for applications that need nothing else.
public struct BearerRequestContext: AccessTokenRequestContext {
    public var coreContext: CoreRequestContextStorage
    public var accessToken: AccessToken?

    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.accessToken = nil
    }
}

/// Reads `Authorization: Bearer …` (RFC 6750 §2.1), verifies the token, and puts the verified
/// `AccessToken` in the request context. Refusals answer per RFC 6750 §3:
/// - no token: 401 with `WWW-Authenticate: Bearer realm=…` and no error code;
/// - a token that fails any check: 401 `invalid_token` (the check's name in `error_description`);
/// - two Authorization fields, or a token in the query string: 400 `invalid_request`
///   (RFC 6750 §2: one method per request; tokens in URLs leak, RFC 6750 §5.3, RFC 9700 §4.3);
/// - the issuer's keys cannot be obtained at all: 503.
/// The token never reaches a log or a response.
public struct BearerTokenMiddleware<Context: AccessTokenRequestContext>: RouterMiddleware {
    let verifier: AccessTokenVerifier
    let realm: String?

    public init(verifier: AccessTokenVerifier, realm: String? = nil) {
        self.verifier = verifier
        self.realm = realm
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.queryParameters["access_token"] != nil {
            return BearerResponses.invalidRequest("send the access token in the Authorization header, not the URL", realm: realm)
        }
        let fields = request.headers[values: .authorization]
        guard fields.count <= 1 else {
            return BearerResponses.invalidRequest("more than one Authorization header", realm: realm)
        }
        guard let token = fields.first.flatMap(Self.bearerToken) else {
            return BearerResponses.unauthorized(challenge: BearerChallenge.missingToken(realm: realm), body: nil)
        }
        do {
            var context = context
            context.accessToken = try await verifier.verify(token)
            return try await next(request, context)
        } catch let error as TokenVerificationError {
            context.logger.debug("access token refused", metadata: ["check": .string(error.code.rawValue)])
            if error.code == .keysUnavailable {
                return BearerResponses.json(status: .serviceUnavailable, ["error": "temporarily_unavailable"], challenge: nil)
            }
            return BearerResponses.refused(error, realm: realm, requiredScopes: [])
        }
    }

    /// The b64token of `Bearer <token>` (scheme case-insensitive, RFC 9110 §11.1); nil for other schemes.
    static func bearerToken(_ field: String) -> String? {
        guard field.count > 7, field.prefix(7).lowercased() == "bearer " else { return nil }
        let token = field.dropFirst(7).drop { $0 == " " }
        // RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
        guard !token.isEmpty,
            token.utf8.allSatisfy({ byte in
                (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || (0x30...0x39).contains(byte)
                    || [0x2D, 0x2E, 0x5F, 0x7E, 0x2B, 0x2F, 0x3D].contains(byte)
            })
        else { return "" }  // present but malformed: verification refuses it as invalid_token
        return String(token)
    }
}

/// Requires scopes on the routes it guards; runs after `BearerTokenMiddleware`.
/// A valid token without them is answered 403 `insufficient_scope` naming the scopes (RFC 6750 §3.1).
public struct RequireScopesMiddleware<Context: AccessTokenRequestContext>: RouterMiddleware {
    let scopes: [String]
    let realm: String?

    public init(_ scopes: String..., realm: String? = nil) {
        self.scopes = scopes
        self.realm = realm
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token = context.accessToken else {
            return BearerResponses.unauthorized(challenge: BearerChallenge.missingToken(realm: realm), body: nil)
        }
        do {
            try token.requireScopes(scopes)
        } catch let error as TokenVerificationError {
            return BearerResponses.refused(error, realm: realm, requiredScopes: scopes)
        }
        return try await next(request, context)
    }
}

enum BearerResponses {
    static func refused(_ error: TokenVerificationError, realm: String?, requiredScopes: [String]) -> Response {
        let challenge = BearerChallenge.refused(error, realm: realm, requiredScopes: requiredScopes)
        // The body says what the challenge says (RFC 6750 §3), with the scopes the route needs.
        var body = ["error": error.oauthError, "error_description": error.wireDescription]
        if error.code == .insufficientScope, !requiredScopes.isEmpty { body["scope"] = requiredScopes.joined(separator: " ") }
        return json(status: .init(code: error.httpStatus), body, challenge: challenge)
    }

    static func unauthorized(challenge: String, body: [String: String]?) -> Response {
        json(status: .unauthorized, body ?? ["error": "unauthorized"], challenge: challenge)
    }

    static func invalidRequest(_ description: String, realm: String?) -> Response {
        json(
            status: .badRequest, ["error": "invalid_request", "error_description": description],
            challenge: BearerChallenge.invalidRequest(description, realm: realm))
    }

    static func json(status: HTTPResponse.Status, _ body: [String: String], challenge: String?) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        if let challenge { headers[.wwwAuthenticate] = challenge }
        let bytes = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// Forwards key-source events (refreshes, skipped keys, outages) to a swift-log logger.
public func keySourceLogger(_ logger: Logger) -> KeySourceLogger {
    { event in
        switch event.level {
        case .debug: logger.debug("\(event.message)")
        case .info: logger.info("\(event.message)")
        case .warning: logger.warning("\(event.message)")
        case .error: logger.error("\(event.message)")
        }
    }
}
