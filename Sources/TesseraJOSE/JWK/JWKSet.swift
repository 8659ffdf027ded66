/// A JWK Set (RFC 7517 §5) as data.
public struct JWKSet: Sendable, Equatable {
    public var keys: [JWK]

    public init(keys: [JWK]) { self.keys = keys }

    /// Parses `{"keys":[…]}` strictly. Members other than `keys` are kept out (RFC 7517 §5 allows them).
    public init<Bytes: Collection>(jsonBytes: Bytes) throws where Bytes.Element == UInt8 {
        let object = try JSONObject(parsing: jsonBytes)
        guard let array = object["keys"]?.arrayValue else {
            throw JOSEError(.invalidKeySet, "a JWK Set needs a \"keys\" array")
        }
        keys = try array.map { element in
            guard let members = element.objectValue else { throw JOSEError(.invalidKeySet, "a JWK Set entry is not an object") }
            return try JWK(members: members)
        }
    }

    public init(json: String) throws { try self.init(jsonBytes: Array(json.utf8)) }

    /// The compact JSON text `{"keys":[…]}`.
    public var jsonString: String {
        JSONObject(["keys": .array(keys.map { .object($0.members) })]).jsonString
    }

    /// True when any key carries secret material: such a set must never be published.
    public var containsPrivateMembers: Bool { keys.contains { $0.containsPrivateMembers } }
}
