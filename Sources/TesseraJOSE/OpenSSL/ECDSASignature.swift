internal import CTesseraCrypto

/// Conversion between libcrypto's DER ECDSA signatures and JWS's fixed-length r‖s (RFC 7518 §3.4).
enum ECDSASignature {
    static func jwsForm(der: [UInt8], size: Int) throws -> [UInt8] {
        let signature: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_ECDSA_SIG(nil, &cursor, buffer.count)
        }
        guard let signature else { throw cryptoError(.cryptoFailure, "libcrypto produced an unreadable ECDSA signature") }
        defer { ECDSA_SIG_free(signature) }
        var r: OpaquePointer?
        var s: OpaquePointer?
        ECDSA_SIG_get0(signature, &r, &s)
        var out = [UInt8](repeating: 0, count: 2 * size)
        let ok = out.withUnsafeMutableBufferPointer { buffer in
            BN_bn2binpad(r, buffer.baseAddress, Int32(size)) == Int32(size)
                && BN_bn2binpad(s, buffer.baseAddress! + size, Int32(size)) == Int32(size)
        }
        guard ok else { throw cryptoError(.cryptoFailure, "ECDSA signature component too large") }
        return out
    }

    /// DER for a JWS r‖s signature of exactly `2 × size` bytes; `nil` when it cannot be encoded.
    static func der(jws: UnsafeRawBufferPointer, size: Int) -> [UInt8]? {
        guard jws.count == 2 * size, let signature = ECDSA_SIG_new() else { return nil }
        defer { ECDSA_SIG_free(signature) }
        let bytes = jws.bindMemory(to: UInt8.self)
        guard let r = BN_bin2bn(bytes.baseAddress, Int32(size), nil) else { return nil }
        guard let s = BN_bin2bn(bytes.baseAddress! + size, Int32(size), nil) else {
            BN_free(r)
            return nil
        }
        guard ECDSA_SIG_set0(signature, r, s) == 1 else {
            BN_free(r)
            BN_free(s)
            return nil
        }
        let length = i2d_ECDSA_SIG(signature, nil)
        guard length > 0 else { return nil }
        var out = [UInt8](repeating: 0, count: Int(length))
        let written = out.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            return i2d_ECDSA_SIG(signature, &cursor)
        }
        return written == length ? out : nil
    }
}
