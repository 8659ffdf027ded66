internal import CTesseraCrypto

/// Drains libcrypto's thread-local error queue into a `JOSEError`.
func cryptoError(_ code: JOSEError.Code = .cryptoFailure, _ message: String) -> JOSEError {
    var texts: [String] = []
    while true {
        let error = ERR_get_error()
        if error == 0 { break }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(error, &buffer, buffer.count)
        if texts.count < 4 { texts.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)) }
    }
    return JOSEError(code, message, underlying: texts.isEmpty ? nil : texts.joined(separator: "; "))
}

/// Forgets queued libcrypto errors after an expected failure (a signature that does not verify),
/// so the thread-local queue cannot grow and later errors are not misattributed.
@inline(__always) func clearCryptoErrors() { ERR_clear_error() }

/// Message digests fetched once from the default provider: fetching per call costs more than a
/// short HMAC (OpenSSL 3 "implicit fetch" overhead).
struct FetchedDigests: @unchecked Sendable {
    let sha256: OpaquePointer
    let sha384: OpaquePointer
    let sha512: OpaquePointer
    let hmac: OpaquePointer

    static let shared: FetchedDigests = {
        guard let sha256 = EVP_MD_fetch(nil, "SHA2-256", nil),
              let sha384 = EVP_MD_fetch(nil, "SHA2-384", nil),
              let sha512 = EVP_MD_fetch(nil, "SHA2-512", nil),
              let hmac = EVP_MAC_fetch(nil, "HMAC", nil) else {
            // The default provider is part of libcrypto itself; without it nothing in Tessera can work.
            fatalError("libcrypto's default provider has no SHA-2 or HMAC implementation")
        }
        return FetchedDigests(sha256: sha256, sha384: sha384, sha512: sha512, hmac: hmac)
    }()

    func md(for digest: JWSAlgorithm.Digest) -> OpaquePointer? {
        switch digest {
        case .sha256: return sha256
        case .sha384: return sha384
        case .sha512: return sha512
        case .none: return nil
        }
    }

    static func name(for digest: JWSAlgorithm.Digest) -> String {
        switch digest {
        case .sha256: return "SHA2-256"
        case .sha384: return "SHA2-384"
        case .sha512: return "SHA2-512"
        case .none: return ""
        }
    }
}

/// SHA-2 digests (for JWK thumbprints, PKCE and token hashing).
public enum Digest {
    public static func sha256<Bytes: Collection>(_ bytes: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        hash(Array(bytes), FetchedDigests.shared.sha256, 32)
    }

    public static func sha384<Bytes: Collection>(_ bytes: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        hash(Array(bytes), FetchedDigests.shared.sha384, 48)
    }

    public static func sha512<Bytes: Collection>(_ bytes: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        hash(Array(bytes), FetchedDigests.shared.sha512, 64)
    }

    /// HMAC-SHA-256 of `message` under `key` (RFC 2104), for derivations inside Tessera (not JWS: a JWS
    /// MAC goes through `SigningKey`, which is bound to one algorithm and checks the key length).
    public static func hmacSHA256<Key: Collection, Message: Collection>(key: Key, _ message: Message) -> [UInt8]
    where Key.Element == UInt8, Message.Element == UInt8 {
        let key = Array(key), message = Array(message)
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let result = key.withUnsafeBytes { k in
            message.withUnsafeBytes { m in
                HMAC(FetchedDigests.shared.sha256, k.baseAddress, Int32(k.count), m.baseAddress?.assumingMemoryBound(to: UInt8.self), m.count, &out, &length)
            }
        }
        precondition(result != nil && length == 32, "HMAC failed")
        return out
    }

    private static func hash(_ input: [UInt8], _ md: OpaquePointer, _ size: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: size)
        var length: UInt32 = 0
        let ok = input.withUnsafeBytes { data in
            EVP_Digest(data.baseAddress, data.count, &out, &length, md, nil)
        }
        // EVP_Digest cannot fail for a fetched SHA-2 and in-memory input short of allocation failure.
        precondition(ok == 1 && Int(length) == size, "EVP_Digest failed")
        return out
    }
}

/// The one source of randomness for Tessera: libcrypto's CSPRNG (seeded from the OS).
public enum SecureRandom {
    /// `count` cryptographically secure random bytes.
    public static func bytes(count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        guard count == 0 || RAND_bytes(&out, Int32(count)) == 1 else {
            throw cryptoError(.cryptoFailure, "the random generator failed")
        }
        return out
    }
}

/// Comparison whose time does not depend on where two equal-length byte strings differ.
public enum ConstantTime {
    /// True when `lhs` and `rhs` are equal. Lengths are not secret and are compared first.
    public static func equals<A: Collection, B: Collection>(_ lhs: A, _ rhs: B) -> Bool
    where A.Element == UInt8, B.Element == UInt8 {
        guard lhs.count == rhs.count else { return false }
        if lhs.isEmpty { return true }
        let left = Array(lhs), right = Array(rhs)
        return left.withUnsafeBytes { l in
            right.withUnsafeBytes { r in CRYPTO_memcmp(l.baseAddress, r.baseAddress, l.count) == 0 }
        }
    }
}

/// Overwrites memory holding secret bytes (best effort: Swift may have copied them elsewhere).
func cleanse(_ bytes: inout [UInt8]) {
    let count = bytes.count
    bytes.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, count) }
}

/// Password hashing for stored user passwords (never for tokens or client secrets, which are random).
public enum PasswordHashing {
    /// scrypt (RFC 7914) through libcrypto. `logN` is log2 of the cost N; memory use is 128·N·r bytes.
    public static func scrypt(password: [UInt8], salt: [UInt8], logN: Int, r: Int, p: Int, length: Int = 32) throws -> [UInt8] {
        guard (10...20).contains(logN), (1...32).contains(r), (1...16).contains(p), (16...64).contains(length), !salt.isEmpty else {
            throw cryptoError(.invalidKey, "scrypt parameters out of range")
        }
        var out = [UInt8](repeating: 0, count: length)
        let maximumMemory = UInt64(128 * r) << UInt64(logN) + (1 << 20) * UInt64(p)
        // A zero byte appended so an empty password still has an address; its length excludes it.
        let passwordBytes = password.map { CChar(bitPattern: $0) } + [0]
        let ok = passwordBytes.withUnsafeBufferPointer { pass in
            salt.withUnsafeBufferPointer { saltBytes in
                EVP_PBE_scrypt(pass.baseAddress, password.count, saltBytes.baseAddress, saltBytes.count,
                               UInt64(1) << UInt64(logN), UInt64(r), UInt64(p), maximumMemory * 2, &out, length)
            }
        }
        guard ok == 1 else { throw cryptoError(.cryptoFailure, "scrypt failed") }
        return out
    }

    /// PBKDF2-HMAC-SHA-256 (RFC 8018 §5.2), for hashes imported from other systems (Django's
    /// `pbkdf2_sha256`, for one). New hashes are scrypt.
    public static func pbkdf2SHA256(password: [UInt8], salt: [UInt8], iterations: Int, length: Int = 32) throws -> [UInt8] {
        guard (1...10_000_000).contains(iterations), (16...64).contains(length) else {
            throw cryptoError(.invalidKey, "PBKDF2 parameters out of range")
        }
        var out = [UInt8](repeating: 0, count: length)
        let passwordBytes = password.map { CChar(bitPattern: $0) } + [0]
        let ok = passwordBytes.withUnsafeBufferPointer { pass in
            salt.withUnsafeBufferPointer { saltBytes in
                PKCS5_PBKDF2_HMAC(pass.baseAddress, Int32(password.count), saltBytes.baseAddress, Int32(saltBytes.count),
                                  Int32(iterations), EVP_sha256(), Int32(length), &out)
            }
        }
        guard ok == 1 else { throw cryptoError(.cryptoFailure, "PBKDF2 failed") }
        return out
    }
}
