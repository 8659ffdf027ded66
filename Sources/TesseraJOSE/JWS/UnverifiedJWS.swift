/// A JWS in compact serialization (RFC 7515 §7.1), parsed but not yet verified.
///
/// Parsing is bounded: a token longer than `maximumSize` bytes is rejected before any splitting or
/// decoding. Exactly three segments are accepted (so JWE and the JSON serializations are refused),
/// each strictly base64url; the header must be a JSON object without duplicate members.
/// Nothing here can be trusted until `verified(…)` returns.
public struct UnverifiedJWS: Sendable {
    /// The default bound on a token's size: 16 KiB.
    public static let defaultMaximumSize = 16 * 1024

    public let header: JWSHeader
    /// The decoded payload. Unauthenticated until verified.
    public let payload: [UInt8]
    let signingInput: [UInt8]
    let signature: [UInt8]

    public init(parsing token: String, maximumSize: Int = UnverifiedJWS.defaultMaximumSize) throws {
        try Self.checkSize(token.utf8.count, maximumSize)
        var token = token
        self = try token.withUTF8 { try UnverifiedJWS(bytes: UnsafeRawBufferPointer($0)) }
    }

    public init<Bytes: Collection>(parsing bytes: Bytes, maximumSize: Int = UnverifiedJWS.defaultMaximumSize) throws
    where Bytes.Element == UInt8 {
        try Self.checkSize(bytes.count, maximumSize)
        if let parsed = try bytes.withContiguousStorageIfAvailable({
            try UnverifiedJWS(bytes: UnsafeRawBufferPointer($0))
        }) {
            self = parsed
        } else {
            self = try Array(bytes).withUnsafeBytes { try UnverifiedJWS(bytes: $0) }
        }
    }

    /// The bound is checked by the public initialisers before any copy, split or decode.
    private static func checkSize(_ count: Int, _ maximumSize: Int) throws {
        if count > maximumSize {
            throw JOSEError(.tokenTooLarge, "token of \(count) bytes exceeds the \(maximumSize)-byte bound")
        }
    }

    private init(bytes: UnsafeRawBufferPointer) throws {
        var firstDot = -1
        var secondDot = -1
        for index in 0..<bytes.count where bytes[index] == UInt8(ascii: ".") {
            if firstDot < 0 {
                firstDot = index
            } else if secondDot < 0 {
                secondDot = index
            } else {
                throw JOSEError(.malformedToken, "more than three segments (a JWE or a corrupted token)")
            }
        }
        guard secondDot > 0 else {
            throw JOSEError(
                .malformedToken,
                bytes.first == UInt8(ascii: "{")
                    ? "JSON serialization is not accepted; compact serialization only"
                    : "fewer than three dot-separated segments")
        }
        let headerBytes = try Self.decodeSegment(bytes, 0, firstDot, "header")
        let fields: JSONObject
        do {
            fields = try JSONObject(parsing: headerBytes)
        } catch let error as JOSEError {
            throw JOSEError(.malformedHeader, "protected header: \(error.message)")
        }
        header = try JWSHeader(fields: fields)
        payload = try Self.decodeSegment(bytes, firstDot + 1, secondDot, "payload")
        signature = try Self.decodeSegment(bytes, secondDot + 1, bytes.count, "signature")
        signingInput = Array(UnsafeRawBufferPointer(rebasing: bytes[0..<secondDot]))
    }

    private static func decodeSegment(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int, _ name: String) throws -> [UInt8] {
        do {
            return try Base64URL.decode(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
        } catch let error as JOSEError {
            throw JOSEError(.invalidBase64URL, "\(name) segment: \(error.message)")
        }
    }

    /// Verifies the signature with `key`. The key's own algorithm must equal the header's `alg`:
    /// the token never chooses how a key is used (RFC 8725 §3.1).
    public func verified(with key: VerificationKey) throws -> VerifiedJWS {
        guard key.algorithm == header.algorithm else {
            throw JOSEError(.algorithmMismatch, "header \"alg\" \(header.algorithm) differs from the key's \(key.algorithm)")
        }
        let valid = signature.withUnsafeBytes { sig in
            signingInput.withUnsafeBytes { key.isValidSignature(sig, for: $0) }
        }
        guard valid else { throw JOSEError(.invalidSignature, "\(header.algorithm) signature does not verify") }
        return VerifiedJWS(header: header, payload: payload, keyID: key.keyID)
    }

    /// Chooses the key from `keys` by `kid` (see `VerificationKeySet.key(for:)`) and verifies with it.
    public func verified(using keys: VerificationKeySet) throws -> VerifiedJWS {
        try verified(with: try keys.key(for: header))
    }
}

/// A JWS whose signature verified with a trusted key.
public struct VerifiedJWS: Sendable {
    public let header: JWSHeader
    public let payload: [UInt8]
    /// The `kid` of the key that verified it.
    public let keyID: String?

    /// The payload as a JSON object (a JWT claims set), parsed strictly.
    public func payloadObject() throws -> JSONObject { try JSONObject(parsing: payload) }
}
