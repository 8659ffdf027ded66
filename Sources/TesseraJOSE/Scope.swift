/// The OAuth scope grammar (RFC 6749 §3.3), written once for the issuer and the verifier, which share only
/// this module: `scope = scope-token *( SP scope-token )`, `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
package enum Scope {
    /// One scope token: printable ASCII without space, `"` or `\`.
    package static func isToken(_ token: some StringProtocol) -> Bool {
        !token.isEmpty && token.utf8.allSatisfy { $0 == 0x21 || (0x23...0x5B).contains($0) || (0x5D...0x7E).contains($0) }
    }

    /// The tokens of a `scope` value, in order, repeats dropped; nil unless the whole value is the grammar
    /// (no empty value, no leading, trailing or double space, no other character).
    package static func parse(_ text: String) -> [String]? {
        let tokens = text.split(separator: " ", omittingEmptySubsequences: false)
        guard tokens.allSatisfy(isToken) else { return nil }
        return normalized(tokens.map(String.init))
    }

    /// The tokens in their first order with repeats dropped (RFC 6749 §3.3: the order does not matter).
    package static func normalized(_ tokens: [String]) -> [String] {
        var seen = Set<String>()
        return tokens.filter { seen.insert($0).inserted }
    }
}
