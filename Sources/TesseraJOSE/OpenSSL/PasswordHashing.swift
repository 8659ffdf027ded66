internal import CTesseraCrypto

/// Password hashing for stored user passwords (never for tokens or client secrets, which are random).
package enum PasswordHashing {
    /// scrypt (RFC 7914) through libcrypto. `logN` is log2 of the cost N; memory use is 128·N·r bytes.
    package static func scrypt(password: [UInt8], salt: [UInt8], logN: Int, r: Int, p: Int, length: Int = 32) throws -> [UInt8] {
        guard (10...20).contains(logN), (1...32).contains(r), (1...16).contains(p), (16...64).contains(length), !salt.isEmpty else {
            throw cryptoError(.invalidKey, "scrypt parameters out of range")
        }
        var out = [UInt8](repeating: 0, count: length)
        let maximumMemory = UInt64(128 * r) << UInt64(logN) + (1 << 20) * UInt64(p)
        // A zero byte appended so an empty password still has an address; its length excludes it.
        let passwordBytes = password.map { CChar(bitPattern: $0) } + [0]
        let ok = passwordBytes.withUnsafeBufferPointer { pass in
            salt.withUnsafeBufferPointer { saltBytes in
                EVP_PBE_scrypt(
                    pass.baseAddress, password.count, saltBytes.baseAddress, saltBytes.count,
                    UInt64(1) << UInt64(logN), UInt64(r), UInt64(p), maximumMemory * 2, &out, length)
            }
        }
        guard ok == 1 else { throw cryptoError(.cryptoFailure, "scrypt failed") }
        return out
    }

    /// PBKDF2-HMAC-SHA-256 (RFC 8018 §5.2), for hashes imported from other systems (Django's
    /// `pbkdf2_sha256`, for one). New hashes are scrypt.
    package static func pbkdf2SHA256(password: [UInt8], salt: [UInt8], iterations: Int, length: Int = 32) throws -> [UInt8] {
        guard (1...10_000_000).contains(iterations), (16...64).contains(length) else {
            throw cryptoError(.invalidKey, "PBKDF2 parameters out of range")
        }
        var out = [UInt8](repeating: 0, count: length)
        let passwordBytes = password.map { CChar(bitPattern: $0) } + [0]
        let ok = passwordBytes.withUnsafeBufferPointer { pass in
            salt.withUnsafeBufferPointer { saltBytes in
                PKCS5_PBKDF2_HMAC(
                    pass.baseAddress, Int32(password.count), saltBytes.baseAddress, Int32(saltBytes.count),
                    Int32(iterations), EVP_sha256(), Int32(length), &out)
            }
        }
        guard ok == 1 else { throw cryptoError(.cryptoFailure, "PBKDF2 failed") }
        return out
    }
}
