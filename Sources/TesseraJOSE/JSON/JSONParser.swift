/// A strict RFC 8259 parser over raw bytes. Internal details live here; use `JSONValue(parsing:)`.
public enum JSONParser {
    /// JOSE headers, JWT claims and JWKs are shallow; 32 levels leave room and stop stack-exhaustion input.
    public static let defaultMaximumDepth = 32

    static func parse(_ input: UnsafeRawBufferPointer, maximumDepth: Int) throws -> JSONValue {
        var parser = Parser(input: input, maximumDepth: maximumDepth)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        if parser.index != input.count { throw parser.error("unexpected content after the JSON value") }
        return value
    }

    private struct Parser {
        let input: UnsafeRawBufferPointer
        let maximumDepth: Int
        var index = 0

        init(input: UnsafeRawBufferPointer, maximumDepth: Int) {
            self.input = input
            self.maximumDepth = maximumDepth
        }

        func error(_ message: String) -> JOSEError {
            JOSEError(.invalidJSON, "\(message) at byte \(index)")
        }

        @inline(__always) mutating func skipWhitespace() {
            while index < input.count {
                switch input[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        @inline(__always) func peek() -> UInt8? { index < input.count ? input[index] : nil }

        mutating func expect(_ literal: StaticString, _ value: JSONValue) throws -> JSONValue {
            let count = literal.utf8CodeUnitCount
            guard index + count <= input.count else { throw error("truncated literal") }
            let matches = literal.withUTF8Buffer { lit in
                for offset in 0..<count where input[index + offset] != lit[offset] { return false }
                return true
            }
            guard matches else { throw error("invalid literal") }
            index += count
            return value
        }

        mutating func parseValue(depth: Int) throws -> JSONValue {
            guard let byte = peek() else { throw error("unexpected end of JSON") }
            switch byte {
            case UInt8(ascii: "{"): return .object(try parseObject(depth: depth + 1))
            case UInt8(ascii: "["): return .array(try parseArray(depth: depth + 1))
            case UInt8(ascii: "\""): return .string(try parseString())
            case UInt8(ascii: "t"): return try expect("true", .bool(true))
            case UInt8(ascii: "f"): return try expect("false", .bool(false))
            case UInt8(ascii: "n"): return try expect("null", .null)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
            default: throw error("unexpected character")
            }
        }

        mutating func parseObject(depth: Int) throws -> JSONObject {
            if depth > maximumDepth { throw error("JSON nested deeper than \(maximumDepth) levels") }
            index += 1  // {
            var object = JSONObject(minimumCapacity: 8)
            skipWhitespace()
            if peek() == UInt8(ascii: "}") {
                index += 1
                return object
            }
            while true {
                skipWhitespace()
                guard peek() == UInt8(ascii: "\"") else { throw error("expected a member name") }
                let key = try parseString()
                skipWhitespace()
                guard peek() == UInt8(ascii: ":") else { throw error("expected ':' after a member name") }
                index += 1
                skipWhitespace()
                let value = try parseValue(depth: depth)
                guard object.insertNew(key, value) else {
                    // The name may be attacker-chosen: report its length, not its text.
                    throw error("duplicate member name (\(key.utf8.count) bytes)")
                }
                skipWhitespace()
                switch peek() {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "}"):
                    index += 1
                    return object
                default: throw error("expected ',' or '}' in an object")
                }
            }
        }

        mutating func parseArray(depth: Int) throws -> [JSONValue] {
            if depth > maximumDepth { throw error("JSON nested deeper than \(maximumDepth) levels") }
            index += 1  // [
            var array = [JSONValue]()
            skipWhitespace()
            if peek() == UInt8(ascii: "]") {
                index += 1
                return array
            }
            while true {
                skipWhitespace()
                array.append(try parseValue(depth: depth))
                skipWhitespace()
                switch peek() {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "]"):
                    index += 1
                    return array
                default: throw error("expected ',' or ']' in an array")
                }
            }
        }

        mutating func parseString() throws -> String {
            index += 1  // opening quote
            let start = index
            // Fast path: no escapes.
            while index < input.count {
                let byte = input[index]
                if byte == UInt8(ascii: "\"") {
                    let slice = UnsafeRawBufferPointer(rebasing: input[start..<index])
                    index += 1
                    return try makeString(slice)
                }
                if byte == UInt8(ascii: "\\") { break }
                if byte < 0x20 { throw error("control character in a string") }
                index += 1
            }
            guard index < input.count else { throw error("unterminated string") }
            // Slow path with escapes.
            var bytes = [UInt8](UnsafeRawBufferPointer(rebasing: input[start..<index]))
            while index < input.count {
                let byte = input[index]
                switch byte {
                case UInt8(ascii: "\""):
                    index += 1
                    return try bytes.withUnsafeBytes { try makeString($0) }
                case UInt8(ascii: "\\"):
                    index += 1
                    guard let escape = peek() else { throw error("unterminated escape") }
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""): bytes.append(0x22)
                    case UInt8(ascii: "\\"): bytes.append(0x5C)
                    case UInt8(ascii: "/"): bytes.append(0x2F)
                    case UInt8(ascii: "b"): bytes.append(0x08)
                    case UInt8(ascii: "f"): bytes.append(0x0C)
                    case UInt8(ascii: "n"): bytes.append(0x0A)
                    case UInt8(ascii: "r"): bytes.append(0x0D)
                    case UInt8(ascii: "t"): bytes.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try parseHex4()
                        if (0xD800...0xDBFF).contains(scalar) {
                            guard index + 2 <= input.count, input[index] == UInt8(ascii: "\\"),
                                input[index + 1] == UInt8(ascii: "u")
                            else {
                                throw error("unpaired surrogate escape")
                            }
                            index += 2
                            let low = try parseHex4()
                            guard (0xDC00...0xDFFF).contains(low) else { throw error("unpaired surrogate escape") }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00...0xDFFF).contains(scalar) {
                            throw error("unpaired surrogate escape")
                        }
                        bytes.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
                    default:
                        throw error("invalid escape")
                    }
                default:
                    if byte < 0x20 { throw error("control character in a string") }
                    bytes.append(byte)
                    index += 1
                }
            }
            throw error("unterminated string")
        }

        mutating func parseHex4() throws -> UInt32 {
            guard index + 4 <= input.count else { throw error("truncated \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = input[index]
                let digit: UInt32
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
                default: throw error("invalid \\u escape")
                }
                value = value << 4 | digit
                index += 1
            }
            return value
        }

        func makeString(_ bytes: UnsafeRawBufferPointer) throws -> String {
            // ASCII is by far the common case and needs no validation.
            var ascii = true
            for byte in bytes where byte >= 0x80 {
                ascii = false
                break
            }
            if ascii { return String(decoding: bytes, as: UTF8.self) }
            guard let string = String(validating: bytes.bindMemory(to: UInt8.self), as: UTF8.self) else {
                throw error("string is not valid UTF-8")
            }
            return string
        }

        mutating func parseNumber() throws -> JSONNumber {
            let start = index
            if peek() == UInt8(ascii: "-") { index += 1 }
            guard let first = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else {
                throw error("invalid number")
            }
            if first == UInt8(ascii: "0") {
                index += 1
            } else {
                while let byte = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { index += 1 }
            }
            var isInteger = true
            if peek() == UInt8(ascii: ".") {
                isInteger = false
                index += 1
                let digitsStart = index
                while let byte = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { index += 1 }
                if index == digitsStart { throw error("invalid number fraction") }
            }
            if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
                isInteger = false
                index += 1
                if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
                let digitsStart = index
                while let byte = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { index += 1 }
                if index == digitsStart { throw error("invalid number exponent") }
            }
            let literal = String(decoding: UnsafeRawBufferPointer(rebasing: input[start..<index]), as: UTF8.self)
            return JSONNumber(literal: literal, isIntegerLiteral: isInteger)
        }
    }
}
