internal import CTesseraCrypto

/// An HMAC secret bound to one digest, with a keyed libcrypto context prepared once.
///
/// Each MAC duplicates the prepared context (the inner and outer pads are already hashed), which
/// is several times cheaper than keying a new context per token.
final class HMACKey: @unchecked Sendable {
    let algorithm: JWSAlgorithm
    private(set) var secret: [UInt8]
    private let template: OpaquePointer

    init(secret: [UInt8], algorithm: JWSAlgorithm) throws {
        precondition(algorithm.family == .hmac)
        guard let context = EVP_MAC_CTX_new(FetchedDigests.shared.hmac) else {
            throw cryptoError(.cryptoFailure, "cannot create an HMAC context")
        }
        // OSSL_PARAM keeps pointers to its key and value: both C strings must outlive EVP_MAC_init.
        var key = Array("digest".utf8CString)
        var digestName = Array(FetchedDigests.name(for: algorithm.digest).utf8CString)
        let ok = key.withUnsafeMutableBufferPointer { key in
            digestName.withUnsafeMutableBufferPointer { name -> Int32 in
                var params = [
                    OSSL_PARAM_construct_utf8_string(key.baseAddress, name.baseAddress, 0),
                    OSSL_PARAM_construct_end(),
                ]
                return secret.withUnsafeBytes { bytes in
                    EVP_MAC_init(context, bytes.bindMemory(to: UInt8.self).baseAddress, bytes.count, &params)
                }
            }
        }
        guard ok == 1 else {
            EVP_MAC_CTX_free(context)
            throw cryptoError(.cryptoFailure, "cannot key an HMAC context")
        }
        self.secret = secret
        self.algorithm = algorithm
        self.template = context
    }

    deinit {
        EVP_MAC_CTX_free(template)
        cleanse(&secret)
    }

    func mac(_ data: UnsafeRawBufferPointer) throws -> [UInt8] {
        guard let context = EVP_MAC_CTX_dup(template) else {
            throw cryptoError(.cryptoFailure, "cannot copy an HMAC context")
        }
        defer { EVP_MAC_CTX_free(context) }
        var out = [UInt8](repeating: 0, count: algorithm.digestSize)
        var length = 0
        guard EVP_MAC_update(context, data.bindMemory(to: UInt8.self).baseAddress, data.count) == 1,
            EVP_MAC_final(context, &out, &length, out.count) == 1, length == out.count
        else {
            throw cryptoError(.cryptoFailure, "HMAC computation failed")
        }
        return out
    }

    /// Recomputes the MAC and compares in constant time. A truncated or extended MAC never matches
    /// (RFC 7518 §3.2 forbids truncation in JWS).
    func isValid(_ tag: UnsafeRawBufferPointer, for data: UnsafeRawBufferPointer) -> Bool {
        guard tag.count == algorithm.digestSize, let expected = try? mac(data) else { return false }
        return expected.withUnsafeBytes { CRYPTO_memcmp($0.baseAddress, tag.baseAddress, tag.count) == 0 }
    }
}
