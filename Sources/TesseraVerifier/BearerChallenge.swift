/// Builds `WWW-Authenticate: Bearer …` challenges (RFC 6750 §3).
public enum BearerChallenge {
    /// The challenge for a request without any token: no error code (RFC 6750 §3.1).
    public static func missingToken(realm: String? = nil) -> String {
        realm.map { #"Bearer realm="\#(quoted($0))""# } ?? "Bearer"
    }

    /// The challenge for a refused token; for `insufficient_scope`, `scope` lists what the resource needs.
    /// `error_description` is the error's check name, never the token.
    public static func refused(_ error: TokenVerificationError, realm: String? = nil, requiredScopes: [String] = []) -> String {
        var parts: [String] = []
        if let realm { parts.append(#"realm="\#(quoted(realm))""#) }
        parts.append(#"error="\#(error.oauthError)""#)
        parts.append(#"error_description="\#(quoted(error.wireDescription))""#)
        if error.code == .insufficientScope, !requiredScopes.isEmpty {
            parts.append(#"scope="\#(quoted(requiredScopes.joined(separator: " ")))""#)
        }
        return "Bearer " + parts.joined(separator: ", ")
    }

    /// An invalid request (two tokens, token in the query): `invalid_request`, status 400.
    public static func invalidRequest(_ description: String, realm: String? = nil) -> String {
        var parts: [String] = []
        if let realm { parts.append(#"realm="\#(quoted(realm))""#) }
        parts.append(#"error="invalid_request""#)
        parts.append(#"error_description="\#(quoted(description))""#)
        return "Bearer " + parts.joined(separator: ", ")
    }

    /// RFC 6750 §3: attribute values use %x20-21 / %x23-5B / %x5D-7E; anything else is replaced.
    static func quoted(_ value: String) -> String {
        String(
            value.unicodeScalars.prefix(200).map { scalar -> Character in
                let v = scalar.value
                return (v == 0x20 || v == 0x21 || (0x23...0x5B).contains(v) || (0x5D...0x7E).contains(v)) ? Character(scalar) : "?"
            })
    }
}
