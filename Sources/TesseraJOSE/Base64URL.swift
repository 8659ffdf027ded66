/// Base64url without padding (RFC 7515 §2, RFC 4648 §5), decoded strictly.
///
/// Strict means one spelling per byte string: `=` padding, characters outside `A–Z a–z 0–9 - _`,
/// whitespace, a length of 1 mod 4 and non-zero unused trailing bits are all rejected
/// (RFC 4648 §3.5 lets decoders reject non-canonical encodings; JOSE needs one token per signature).
public enum Base64URL {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// 0xFF marks a byte outside the alphabet.
    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, char) in alphabet.enumerated() { table[Int(char)] = UInt8(index) }
        return table
    }()

    /// The encoded length of `count` bytes.
    @inlinable
    public static func encodedCount(_ count: Int) -> Int { (count * 4 + 2) / 3 }

    /// Encodes `bytes` as base64url text without padding.
    public static func encode<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var out = [UInt8]()
        out.reserveCapacity(encodedCount(bytes.count))
        append(bytes, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the base64url encoding of `bytes` to `out` (the hot path for token building).
    public static func append<Bytes: Collection>(_ bytes: Bytes, to out: inout [UInt8]) where Bytes.Element == UInt8 {
        let done: Bool? = bytes.withContiguousStorageIfAvailable { buffer in
            appendBuffer(UnsafeRawBufferPointer(buffer), to: &out)
            return true
        }
        if done == nil {
            let copy = Array(bytes)
            copy.withUnsafeBytes { appendBuffer($0, to: &out) }
        }
    }

    private static func appendBuffer(_ input: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        let count = input.count
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: encodedCount(count)))
        alphabet.withUnsafeBufferPointer { table in
            out.withUnsafeMutableBufferPointer { output in
                var index = 0
                var cursor = start
                while index + 3 <= count {
                    let value = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
                    output[cursor] = table[Int(value >> 18 & 0x3F)]
                    output[cursor + 1] = table[Int(value >> 12 & 0x3F)]
                    output[cursor + 2] = table[Int(value >> 6 & 0x3F)]
                    output[cursor + 3] = table[Int(value & 0x3F)]
                    index += 3
                    cursor += 4
                }
                let rest = count - index
                if rest == 1 {
                    let value = UInt32(input[index]) << 16
                    output[cursor] = table[Int(value >> 18 & 0x3F)]
                    output[cursor + 1] = table[Int(value >> 12 & 0x3F)]
                } else if rest == 2 {
                    let value = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8
                    output[cursor] = table[Int(value >> 18 & 0x3F)]
                    output[cursor + 1] = table[Int(value >> 12 & 0x3F)]
                    output[cursor + 2] = table[Int(value >> 6 & 0x3F)]
                }
            }
        }
    }

    /// Decodes base64url text strictly.
    public static func decode(_ text: String) throws -> [UInt8] {
        var text = text
        return try text.withUTF8 { try decode(UnsafeRawBufferPointer($0)) }
    }

    /// Decodes base64url bytes strictly.
    public static func decode<Bytes: Collection>(_ bytes: Bytes) throws -> [UInt8] where Bytes.Element == UInt8 {
        if let result = try bytes.withContiguousStorageIfAvailable({ try decode(UnsafeRawBufferPointer($0)) }) {
            return result
        }
        return try Array(bytes).withUnsafeBytes { try decode($0) }
    }

    /// Decodes base64url bytes strictly from raw memory.
    public static func decode(_ input: UnsafeRawBufferPointer) throws -> [UInt8] {
        let count = input.count
        if count % 4 == 1 {
            throw JOSEError(.invalidBase64URL, "base64url text has an impossible length")
        }
        let outputCount = count / 4 * 3 + (count % 4 == 0 ? 0 : count % 4 - 1)
        var failure: JOSEError?
        let out = [UInt8](unsafeUninitializedCapacity: outputCount) { output, initialized in
            initialized = 0
            decodeTable.withUnsafeBufferPointer { table in
                // Sextets are OR-ed into `invalid` so that the loop has no branch per character.
                var invalid: UInt8 = 0
                @inline(__always) func sextet(_ byte: UInt8) -> UInt32 {
                    let value = table[Int(byte)]
                    invalid |= value
                    return UInt32(value & 0x3F)
                }
                var index = 0
                var cursor = 0
                while index + 4 <= count {
                    let value =
                        sextet(input[index]) << 18 | sextet(input[index + 1]) << 12
                        | sextet(input[index + 2]) << 6 | sextet(input[index + 3])
                    output[cursor] = UInt8(truncatingIfNeeded: value >> 16)
                    output[cursor + 1] = UInt8(truncatingIfNeeded: value >> 8)
                    output[cursor + 2] = UInt8(truncatingIfNeeded: value)
                    index += 4
                    cursor += 3
                }
                let rest = count - index
                if rest == 2 {
                    let last = sextet(input[index + 1])
                    if last & 0x0F != 0 { failure = JOSEError(.invalidBase64URL, "non-zero trailing bits in base64url text") }
                    output[cursor] = UInt8(truncatingIfNeeded: sextet(input[index]) << 2 | last >> 4)
                    cursor += 1
                } else if rest == 3 {
                    let last = sextet(input[index + 2])
                    if last & 0x03 != 0 { failure = JOSEError(.invalidBase64URL, "non-zero trailing bits in base64url text") }
                    let value = sextet(input[index]) << 18 | sextet(input[index + 1]) << 12 | last << 6
                    output[cursor] = UInt8(truncatingIfNeeded: value >> 16)
                    output[cursor + 1] = UInt8(truncatingIfNeeded: value >> 8)
                    cursor += 2
                }
                if invalid & 0x80 != 0 {
                    let hasPadding = UnsafeRawBufferPointer(rebasing: input[0..<count]).contains(UInt8(ascii: "="))
                    failure = JOSEError(
                        .invalidBase64URL,
                        hasPadding
                            ? "base64url text must not be padded" : "character outside the base64url alphabet")
                }
                initialized = cursor
            }
        }
        if let failure { throw failure }
        return out
    }
}
