internal import CTesseraCrypto

/// The one source of randomness for Tessera: libcrypto's CSPRNG (seeded from the OS).
package enum SecureRandom {
    /// `count` cryptographically secure random bytes.
    package static func bytes(count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        guard count == 0 || RAND_bytes(&out, Int32(count)) == 1 else {
            throw cryptoError(.cryptoFailure, "the random generator failed")
        }
        return out
    }
}
