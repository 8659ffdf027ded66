import Foundation

/// Identifiers compared for security (client ids, usernames, redirect URIs, kids) are compared byte for byte.
///
/// Swift's `String ==` (and `Set`, `Dictionary`, `contains`) compares by Unicode canonical equivalence:
/// "\u{212A}" (KELVIN SIGN) equals "K", and a redirect URI spelled with it would match a registered one while
/// the response carried the other bytes. Nothing that names a client, a user, a key or a place to send a
/// code may match unless its UTF-8 bytes are the same.
extension StringProtocol {
    /// True when the UTF-8 bytes of `self` and `other` are the same (not merely canonically equivalent).
    package func sameBytes(as other: some StringProtocol) -> Bool {
        utf8.elementsEqual(other.utf8)
    }
}

extension String {
    /// `sameBytes(as:)` for two strings, compared as contiguous bytes (`memcmp`), not byte by byte through the
    /// generic collection protocols: it runs on every request (client ids, kids, the issuer, cached tokens).
    package func sameBytes(as other: String) -> Bool {
        guard utf8.count == other.utf8.count else { return false }
        var (left, right) = (self, other)
        return left.withUTF8 { a in right.withUTF8 { b in a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0 } }
    }
}

extension Optional where Wrapped: StringProtocol {
    /// `sameBytes(as:)` for an optional: nil matches nothing.
    package func sameBytes(as other: some StringProtocol) -> Bool {
        map { $0.sameBytes(as: other) } ?? false
    }
}
