/// A JSON value as read by Tessera's strict parser (RFC 8259).
///
/// Tessera parses JOSE headers, claims and JWKs itself rather than with Foundation, because
/// `JSONSerialization` and `JSONDecoder` silently keep one of two duplicate member names, and
/// RFC 7515 §5.2 lets a JWS parser either reject such JSON or keep the last one: Tessera rejects,
/// so two parsers can never read one token differently.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }
    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }
    public var numberValue: JSONNumber? {
        if case .number(let value) = self { return value }
        return nil
    }
    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }
    public var objectValue: JSONObject? {
        if case .object(let value) = self { return value }
        return nil
    }
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// A short name of the value's JSON type, for error messages.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

/// A JSON number kept as its exact literal, so that no precision is lost and overflow is explicit.
public struct JSONNumber: Sendable, Equatable, CustomStringConvertible {
    /// The literal as written (for numbers Tessera creates, its canonical form).
    public let text: String
    /// True when the literal has neither fraction nor exponent.
    public let isIntegerLiteral: Bool

    init(literal: String, isIntegerLiteral: Bool) {
        self.text = literal
        self.isIntegerLiteral = isIntegerLiteral
    }

    public init(_ value: Int64) {
        self.text = String(value)
        self.isIntegerLiteral = true
    }

    public init(_ value: Int) { self.init(Int64(value)) }

    /// The value as an exact 64-bit integer: `nil` for fractions, exponents and out-of-range values
    /// (so `exp: 1e30` or `2^63` can never wrap around).
    public var int64Value: Int64? { isIntegerLiteral ? Int64(text) : nil }

    /// The value as a double (may round; infinite for literals beyond its range).
    public var doubleValue: Double { Double(text) ?? .nan }

    public var description: String { text }
}

/// A JSON object: member names are unique; their order of appearance is kept for writing.
///
/// Members live in one array in order. JOSE headers and claims sets have a handful of members, for
/// which a linear scan beats hashing; an object with more than `indexThreshold` members (hostile
/// input, large JWK Sets) gets a hash index so that lookups and duplicate checks stay O(1).
public struct JSONObject: Sendable, Equatable, Sequence {
    // Names and values in parallel arrays: a lookup scans names only, never touching (retaining) values.
    private var names: [String] = []
    private var values: [JSONValue] = []
    private var index: [String: Int]?
    private static let indexThreshold = 16

    public init() {}

    init(minimumCapacity: Int) {
        names.reserveCapacity(minimumCapacity)
        values.reserveCapacity(minimumCapacity)
    }

    public init(_ members: KeyValuePairs<String, JSONValue>) {
        self.init(minimumCapacity: members.count)
        for (key, value) in members { self[key] = value }
    }

    public var count: Int { names.count }
    public var isEmpty: Bool { names.isEmpty }
    public var keys: [String] { names }

    private func position(of key: String) -> Int? {
        if let index { return index[key] }
        return names.withUnsafeBufferPointer { buffer in
            for offset in 0..<buffer.count where buffer[offset] == key { return offset }
            return nil
        }
    }

    private mutating func rebuildIndex() {
        var built = [String: Int](minimumCapacity: names.count * 2)
        for (offset, name) in names.enumerated() { built[name] = offset }
        index = built
    }

    private mutating func append(_ key: String, _ value: JSONValue) {
        names.append(key)
        values.append(value)
        if index != nil {
            index![key] = names.count - 1
        } else if names.count > Self.indexThreshold {
            rebuildIndex()
        }
    }

    public subscript(key: String) -> JSONValue? {
        get { position(of: key).map { values[$0] } }
        set {
            if let offset = position(of: key) {
                if let newValue {
                    values[offset] = newValue
                } else {
                    names.remove(at: offset)
                    values.remove(at: offset)
                    if index != nil { rebuildIndex() }
                }
            } else if let newValue {
                append(key, newValue)
            }
        }
    }

    /// Inserts a member that must not exist yet; returns false for a duplicate name.
    mutating func insertNew(_ key: String, _ value: JSONValue) -> Bool {
        if position(of: key) != nil { return false }
        append(key, value)
        return true
    }

    public func contains(_ key: String) -> Bool { position(of: key) != nil }

    public func makeIterator() -> Zip2Sequence<[String], [JSONValue]>.Iterator { zip(names, values).makeIterator() }

    /// Equal when both have the same members with equal values, in any order.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.count == rhs.count else { return false }
        return zip(lhs.names, lhs.values).allSatisfy { rhs[$0.0] == $0.1 }
    }

    /// The member's string value, `nil` when absent; throws when present with another type.
    public func string(_ key: String, or code: JOSEError.Code) throws -> String? {
        guard let value = self[key] else { return nil }
        guard let string = value.stringValue else {
            throw JOSEError(code, "member \"\(key)\" must be a string, not \(value.typeName)")
        }
        return string
    }
}

extension JSONValue {
    /// Parses one JSON text (RFC 8259) strictly: duplicate member names, invalid UTF-8, lone
    /// surrogates, a byte-order mark, trailing content and nesting deeper than `maximumDepth`
    /// are errors (`invalidJSON`).
    public init<Bytes: Collection>(parsing bytes: Bytes, maximumDepth: Int = JSONParser.defaultMaximumDepth) throws
    where Bytes.Element == UInt8 {
        if let value = try bytes.withContiguousStorageIfAvailable({
            try JSONParser.parse(UnsafeRawBufferPointer($0), maximumDepth: maximumDepth)
        }) {
            self = value
        } else {
            self = try Array(bytes).withUnsafeBytes { try JSONParser.parse($0, maximumDepth: maximumDepth) }
        }
    }

    public init(parsing text: String, maximumDepth: Int = JSONParser.defaultMaximumDepth) throws {
        try self.init(parsing: Array(text.utf8), maximumDepth: maximumDepth)
    }

    /// The compact JSON text of this value.
    public var jsonString: String {
        var out = [UInt8]()
        JSONWriter.write(self, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

extension JSONObject {
    /// Parses JSON text that must be an object.
    public init<Bytes: Collection>(parsing bytes: Bytes, maximumDepth: Int = JSONParser.defaultMaximumDepth) throws
    where Bytes.Element == UInt8 {
        guard case .object(let object) = try JSONValue(parsing: bytes, maximumDepth: maximumDepth) else {
            throw JOSEError(.invalidJSON, "JSON text is not an object")
        }
        self = object
    }

    public init(parsing text: String) throws { try self.init(parsing: Array(text.utf8)) }

    /// The compact JSON text of this object, members in insertion order.
    public var jsonString: String { JSONValue.object(self).jsonString }

    /// The compact JSON bytes of this object, members in insertion order.
    public var jsonBytes: [UInt8] {
        var out = [UInt8]()
        JSONWriter.write(.object(self), to: &out)
        return out
    }
}
