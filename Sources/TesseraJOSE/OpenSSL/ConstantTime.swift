internal import CTesseraCrypto

/// Overwrites memory holding secret bytes (best effort: Swift may have copied them elsewhere).
func cleanse(_ bytes: inout [UInt8]) {
    let count = bytes.count
    bytes.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, count) }
}

/// Comparison whose time does not depend on where two equal-length byte strings differ.
package enum ConstantTime {
    /// True when `lhs` and `rhs` are equal. Lengths are not secret and are compared first.
    package static func equals<A: Collection, B: Collection>(_ lhs: A, _ rhs: B) -> Bool
    where A.Element == UInt8, B.Element == UInt8 {
        guard lhs.count == rhs.count else { return false }
        if lhs.isEmpty { return true }
        let left = Array(lhs)
        let right = Array(rhs)
        return left.withUnsafeBytes { l in
            right.withUnsafeBytes { r in CRYPTO_memcmp(l.baseAddress, r.baseAddress, l.count) == 0 }
        }
    }
}
