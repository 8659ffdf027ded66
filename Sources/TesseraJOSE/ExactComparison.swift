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

extension Optional where Wrapped: StringProtocol {
    /// `sameBytes(as:)` for an optional: nil matches nothing.
    package func sameBytes(as other: some StringProtocol) -> Bool {
        map { $0.sameBytes(as: other) } ?? false
    }
}
