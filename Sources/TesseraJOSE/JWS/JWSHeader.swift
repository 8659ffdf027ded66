/// The protected header of a JWS (RFC 7515 §4), checked when read.
///
/// Reading enforces: `alg` is a string naming an algorithm Tessera implements (never `none`);
/// `kid`, `typ`, `cty` are strings when present; any `crit` is refused, since Tessera implements no
/// extension (RFC 7515 §4.1.11: a recipient MUST reject critical extensions it does not understand);
/// `b64` other than `true` is refused (RFC 7797 payloads are never JWTs). `jku`, `jwk`, `x5u`, `x5c`
/// are kept as data but never used to find a key (RFC 8725 §3.10).
public struct JWSHeader: Sendable {
    public let algorithm: JWSAlgorithm
    public let keyID: String?
    public let type: String?
    public let contentType: String?
    /// Every member, for typed access to others.
    public let fields: JSONObject

    public init(fields: JSONObject) throws {
        guard let algValue = fields["alg"] else { throw JOSEError(.unsupportedAlgorithm, "header has no \"alg\"") }
        guard let name = algValue.stringValue else {
            throw JOSEError(.unsupportedAlgorithm, "header \"alg\" is \(algValue.typeName), not a string")
        }
        guard let algorithm = JWSAlgorithm(name: name) else {
            let shown = name.lowercased() == "none" ? "an unsecured JWS (\"none\")" : "\"\(name.prefix(16))\""
            throw JOSEError(.unsupportedAlgorithm, "header \"alg\" is \(shown), which is not accepted")
        }
        if let crit = fields["crit"] {
            let shape: String
            if let names = crit.arrayValue {
                shape = names.isEmpty ? "an empty list" : "\(names.count) extension(s)"
            } else {
                shape = "a \(crit.typeName)"
            }
            throw JOSEError(.unsupportedCriticalHeader, "header \"crit\" lists \(shape); Tessera implements no critical extension")
        }
        if let b64 = fields["b64"], b64 != .bool(true) {
            throw JOSEError(.unsupportedCriticalHeader, "header \"b64\" (RFC 7797 unencoded payload) is not accepted")
        }
        self.algorithm = algorithm
        self.keyID = try fields.string("kid", or: .malformedHeader)
        self.type = try fields.string("typ", or: .malformedHeader)
        self.contentType = try fields.string("cty", or: .malformedHeader)
        self.fields = fields
    }

    /// A header for signing: `alg`, then `kid` and `typ` when given.
    public init(algorithm: JWSAlgorithm, keyID: String? = nil, type: String? = nil) {
        var fields = JSONObject()
        fields["alg"] = .string(algorithm.name)
        if let keyID { fields["kid"] = .string(keyID) }
        if let type { fields["typ"] = .string(type) }
        self.algorithm = algorithm
        self.keyID = keyID
        self.type = type
        self.contentType = nil
        self.fields = fields
    }
}
