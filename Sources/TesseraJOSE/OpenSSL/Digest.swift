internal import CTesseraCrypto

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
            let hmac = EVP_MAC_fetch(nil, "HMAC", nil)
        else {
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
package enum Digest {
    package static func sha256<Bytes: Collection>(_ bytes: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        hash(Array(bytes), FetchedDigests.shared.sha256, 32)
    }

    package static func sha384<Bytes: Collection>(_ bytes: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        hash(Array(bytes), FetchedDigests.shared.sha384, 48)
    }

    package static func sha512<Bytes: Collection>(_ bytes: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        hash(Array(bytes), FetchedDigests.shared.sha512, 64)
    }

    /// HMAC-SHA-256 of `message` under `key` (RFC 2104), for derivations inside Tessera (not JWS: a JWS
    /// MAC goes through `SigningKey`, which is bound to one algorithm and checks the key length).
    package static func hmacSHA256<Key: Collection, Message: Collection>(key: Key, _ message: Message) -> [UInt8]
    where Key.Element == UInt8, Message.Element == UInt8 {
        let key = Array(key)
        let message = Array(message)
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let result = key.withUnsafeBytes { k in
            message.withUnsafeBytes { m in
                HMAC(
                    FetchedDigests.shared.sha256, k.baseAddress, Int32(k.count), m.baseAddress?.assumingMemoryBound(to: UInt8.self), m.count, &out,
                    &length)
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
