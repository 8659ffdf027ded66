import Foundation
import TesseraJOSE

/// A token request's parameters (RFC 6749 §3.2): the form body, already checked by the server for
/// repeated parameters and size, and the `Authorization` header if any.
public struct TokenRequest: Sendable {
    public var parameters: [String: String]
    public var authorization: String? {
        didSet { basicCredentials = Self.decode(authorization) }
    }
    /// The `Authorization` header decoded once, for throttling and for client authentication: nil without
    /// one, the `invalid_client` error when it is not valid HTTP Basic.
    public private(set) var basicCredentials: Result<BasicCredentials, OAuthError>?

    public init(parameters: [String: String], authorization: String? = nil) {
        self.parameters = parameters
        self.authorization = authorization
        basicCredentials = Self.decode(authorization)
    }

    private static func decode(_ authorization: String?) -> Result<BasicCredentials, OAuthError>? {
        authorization.map(ClientAuthenticator.decodeBasic)
    }

    public subscript(name: String) -> String? { parameters[name] }

    /// `application/x-www-form-urlencoded` parameters; a parameter given twice is `invalid_request`
    /// (RFC 6749 §3.2: "Request and response parameters MUST NOT be included more than once").
    public static func parseForm(_ body: String) throws -> [String: String] {
        var parameters: [String: String] = [:]
        // Split on the bytes `&` and `=`, never on characters: a combining mark after `&` must not hide it.
        for pair in body.utf8.split(separator: 0x26, omittingEmptySubsequences: true) {
            let equals = pair.firstIndex(of: 0x3D)
            guard let name = ClientAuthenticator.formDecoded(pair[..<(equals ?? pair.endIndex)]),
                let value = ClientAuthenticator.formDecoded(equals.map { pair[pair.index(after: $0)...] } ?? pair[pair.endIndex...])
            else {
                throw OAuthError(.invalidRequest, "the form body is not valid application/x-www-form-urlencoded")
            }
            guard parameters.updateValue(value, forKey: name) == nil else {
                throw OAuthError(.invalidRequest, "the \(name.prefix(40)) parameter is repeated (RFC 6749 §3.2)")
            }
        }
        return parameters
    }

    /// A parameter that must be present and non-empty (RFC 6749 §5.2 `invalid_request` otherwise).
    public func required(_ name: String) throws -> String {
        guard let value = parameters[name], !value.isEmpty else {
            throw OAuthError(.invalidRequest, "the \(name) parameter is missing")
        }
        return value
    }

    /// The `scope` parameter as scope tokens (RFC 6749 §3.3); nil when absent.
    public func scope() throws -> [String]? {
        try parameters["scope"].map(Self.parseScope)
    }

    /// RFC 6749 §3.3: scope tokens separated by single spaces; duplicates dropped, order kept.
    static func parseScope(_ text: String) throws -> [String] {
        guard let tokens = Scope.parse(text) else {
            throw OAuthError(.invalidScope, "scope must be scope tokens separated by single spaces (RFC 6749 §3.3)")
        }
        return tokens
    }
}
