import Foundation

struct FormatError: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

/// Damage at a known offset of a file (the caller adds the file's name).
struct CorruptionError: Error {
    let offset: Int
    let reason: String
}

struct ByteWriter {
    var buffer: [UInt8] = []

    mutating func u8(_ value: UInt8) { buffer.append(value) }
    mutating func u32(_ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { buffer.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }
    mutating func u64(_ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { buffer.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }
    mutating func i32(_ value: Int32) { u32(UInt32(bitPattern: value)) }
    mutating func i64(_ value: Int64) { u64(UInt64(bitPattern: value)) }
    mutating func bytes(_ value: [UInt8]) { buffer += value }
    mutating func key(_ key: FamilyKey) {
        u64(key.high)
        u64(key.low)
    }
    mutating func digest(_ digest: TokenDigest) {
        u64(digest.words.0)
        u64(digest.words.1)
        u64(digest.words.2)
        u64(digest.words.3)
    }

    mutating func string(_ value: String) {
        let utf8 = Array(value.utf8)
        precondition(utf8.count <= UInt16.max)
        buffer.append(UInt8(utf8.count & 0xFF))
        buffer.append(UInt8(utf8.count >> 8))
        buffer += utf8
    }

    mutating func retry(_ retry: RetryState?) {
        guard let retry else { return u8(0) }
        u8(1)
        digest(retry.previous)
        bytes(retry.seed)
        i64(retry.rotatedAt)
    }
}

struct ByteReader {
    private let bytes: ArraySlice<UInt8>
    private var offset: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        offset = bytes.startIndex
    }

    var isAtEnd: Bool { offset == bytes.endIndex }

    mutating func bytes(_ count: Int) throws -> ArraySlice<UInt8> {
        guard bytes.endIndex - offset >= count else { throw FormatError("a record is shorter than its fields") }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    mutating func u8() throws -> UInt8 { try bytes(1).first! }

    mutating func u32() throws -> UInt32 {
        try bytes(4).reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func u64() throws -> UInt64 {
        try bytes(8).reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }

    mutating func i32() throws -> Int32 { Int32(bitPattern: try u32()) }
    mutating func i64() throws -> Int64 { Int64(bitPattern: try u64()) }
    mutating func key() throws -> FamilyKey { FamilyKey(high: try u64(), low: try u64()) }

    mutating func digest() throws -> TokenDigest {
        var d = TokenDigest(bytes: [UInt8](repeating: 0, count: 32))
        d.words = (try u64(), try u64(), try u64(), try u64())
        return d
    }

    mutating func string() throws -> String {
        let length = Int(try u8()) | Int(try u8()) << 8
        let raw = try bytes(length)
        guard let string = String(validating: raw, as: UTF8.self) else { throw FormatError("a string is not UTF-8") }
        return string
    }

    mutating func retry() throws -> RetryState? {
        switch try u8() {
        case 0: return nil
        case 1: return RetryState(previous: try digest(), seed: Array(try bytes(32)), rotatedAt: try i64())
        default: throw FormatError("a retry flag is neither 0 nor 1")
        }
    }
}

/// CRC-32C (Castagnoli), slicing-by-8: catches torn and flipped bytes at a few GB/s.
enum CRC32C {
    static let initial: UInt32 = 0xFFFF_FFFF

    static let tables: [[UInt32]] = {
        var tables = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for i in 0..<256 {
            var crc = UInt32(i)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            tables[0][i] = crc
        }
        for i in 0..<256 {
            for t in 1..<8 { tables[t][i] = (tables[t - 1][i] >> 8) ^ tables[0][Int(tables[t - 1][i] & 0xFF)] }
        }
        return tables
    }()

    static func checksum<Bytes: Collection>(_ bytes: Bytes) -> UInt32 where Bytes.Element == UInt8 {
        update(initial, bytes) ^ 0xFFFF_FFFF
    }

    static func update<Bytes: Collection>(_ crc: UInt32, _ bytes: Bytes) -> UInt32 where Bytes.Element == UInt8 {
        if let result = bytes.withContiguousStorageIfAvailable({ update(crc, UnsafeRawBufferPointer($0)) }) { return result }
        return Array(bytes).withUnsafeBytes { update(crc, $0) }
    }

    static func update(_ crc: UInt32, _ buffer: UnsafeRawBufferPointer) -> UInt32 {
        var crc = crc
        var index = 0
        let count = buffer.count
        tables.withUnsafeBufferPointer { t in
            let t0 = t[0]
            let t1 = t[1]
            let t2 = t[2]
            let t3 = t[3]
            let t4 = t[4]
            let t5 = t[5]
            let t6 = t[6]
            let t7 = t[7]
            while count - index >= 8 {
                let low =
                    crc ^ (UInt32(buffer[index]) | UInt32(buffer[index + 1]) << 8 | UInt32(buffer[index + 2]) << 16 | UInt32(buffer[index + 3]) << 24)
                let high =
                    UInt32(buffer[index + 4]) | UInt32(buffer[index + 5]) << 8 | UInt32(buffer[index + 6]) << 16 | UInt32(buffer[index + 7]) << 24
                crc =
                    t7[Int(low & 0xFF)] ^ t6[Int(low >> 8 & 0xFF)] ^ t5[Int(low >> 16 & 0xFF)] ^ t4[Int(low >> 24)]
                    ^ t3[Int(high & 0xFF)] ^ t2[Int(high >> 8 & 0xFF)] ^ t1[Int(high >> 16 & 0xFF)] ^ t0[Int(high >> 24)]
                index += 8
            }
            while index < count {
                crc = (crc >> 8) ^ t0[Int((crc ^ UInt32(buffer[index])) & 0xFF)]
                index += 1
            }
        }
        return crc
    }
}
