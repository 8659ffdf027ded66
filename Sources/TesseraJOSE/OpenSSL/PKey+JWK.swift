internal import CTesseraCrypto
import Foundation

/// Export of a key's JWK members (RFC 7518 §6): big-endian integers, curve points, raw OKP keys.
extension PKey {
    func bignum(_ name: String, paddedTo size: Int? = nil) throws -> [UInt8] {
        var bn: OpaquePointer?
        guard EVP_PKEY_get_bn_param(pointer, name, &bn) == 1, let bn else {
            throw cryptoError(.cryptoFailure, "key has no \(name) parameter")
        }
        defer { BN_clear_free(bn) }
        let length = size ?? Int(tessera_bn_num_bytes(bn))
        var out = [UInt8](repeating: 0, count: length)
        guard BN_bn2binpad(bn, &out, Int32(length)) == Int32(length) else {
            throw cryptoError(.cryptoFailure, "parameter \(name) does not fit")
        }
        return out
    }

    func rawPublicKey() throws -> [UInt8] { try raw(EVP_PKEY_get_raw_public_key, "public") }

    func rawPrivateKey() throws -> [UInt8] { try raw(EVP_PKEY_get_raw_private_key, "private") }

    private func raw(
        _ get: (OpaquePointer?, UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<Int>?) -> Int32,
        _ name: String
    ) throws -> [UInt8] {
        var length = 0
        guard get(pointer, nil, &length) == 1 else { throw cryptoError(.cryptoFailure, "no raw \(name) key") }
        var out = [UInt8](repeating: 0, count: length)
        guard get(pointer, &out, &length) == 1 else { throw cryptoError(.cryptoFailure, "no raw \(name) key") }
        return out
    }

    /// The JWK members of this key (RFC 7518 §6, RFC 8037 §2), as raw bytes to be base64url-encoded,
    /// plus `crv` for EC and OKP. Private members only when asked and present.
    func jwkMembers(includePrivate: Bool) throws -> (kty: String, crv: String?, members: [(String, [UInt8])]) {
        let withPrivate = includePrivate && hasPrivateKey
        switch kind {
        case .rsa:
            var members = [("n", try bignum("n")), ("e", try bignum("e"))]
            if withPrivate {
                members.append(("d", try bignum("d")))
                if let p = try? bignum("rsa-factor1") {
                    members += [
                        ("p", p), ("q", try bignum("rsa-factor2")), ("dp", try bignum("rsa-exponent1")),
                        ("dq", try bignum("rsa-exponent2")), ("qi", try bignum("rsa-coefficient1")),
                    ]
                }
            }
            return ("RSA", nil, members)
        case .ec(let curve):
            let size = curve == "P-256" ? 32 : curve == "P-384" ? 48 : 66
            var members = [("x", try bignum("qx", paddedTo: size)), ("y", try bignum("qy", paddedTo: size))]
            if withPrivate { members.append(("d", try bignum("priv", paddedTo: size))) }
            return ("EC", curve, members)
        case .ed25519:
            var members = [("x", try rawPublicKey())]
            if withPrivate { members.append(("d", try rawPrivateKey())) }
            return ("OKP", "Ed25519", members)
        }
    }
}
