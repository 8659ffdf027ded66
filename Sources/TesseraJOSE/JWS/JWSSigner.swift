/// Produces compact JWS tokens with one signing key.
///
/// The encoded protected header (`alg`, `kid`, `typ`) is built once, so minting a token costs the
/// payload encoding and the signature only.
public struct JWSSigner: Sendable {
    public let key: SigningKey
    public let header: JWSHeader
    private let encodedHeader: [UInt8]  // base64url(header) + "."

    /// `type` is the `typ` header (`at+jwt` for RFC 9068 access tokens).
    public init(key: SigningKey, type: String? = nil) {
        self.key = key
        self.header = JWSHeader(algorithm: key.algorithm, keyID: key.keyID, type: type)
        var encoded = [UInt8]()
        Base64URL.append(header.fields.jsonBytes, to: &encoded)
        encoded.append(UInt8(ascii: "."))
        self.encodedHeader = encoded
    }

    /// Signs `payload` bytes and returns the compact serialization.
    public func sign<Bytes: Collection>(payload: Bytes) throws -> String where Bytes.Element == UInt8 {
        var token = encodedHeader
        token.reserveCapacity(encodedHeader.count + Base64URL.encodedCount(payload.count) + 180)
        Base64URL.append(payload, to: &token)
        let signature = try token.withUnsafeBytes { try key.signature(for: $0) }
        token.append(UInt8(ascii: "."))
        Base64URL.append(signature, to: &token)
        return String(decoding: token, as: UTF8.self)
    }

    /// Signs a JSON object (a JWT claims set) written compactly in member order.
    public func sign(claims: JSONObject) throws -> String {
        try sign(payload: claims.jsonBytes)
    }
}
