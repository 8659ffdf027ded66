import Foundation
import TesseraJOSE

/// An opaque refresh token as the client holds it: `tsr_` followed by 70 base64url characters.
///
/// The 52 encoded bytes are a 16-byte random family handle, a 4-byte generation (big-endian), and a
/// 32-byte random secret. The handle and generation let the store keep one entry per *family* rather
/// than one per token ever issued, and still recognise any earlier token of a family as reuse: a family
/// rotated hourly for 30 days would otherwise leave 720 dead digests behind. The handle is as secret as
/// the token (it appears nowhere else); the store keeps only digests of it and of the whole token.
///
/// `description` is redacted so a token never reaches a log by string interpolation.
public struct RefreshToken: Sendable, Hashable, CustomStringConvertible {
    /// The token exactly as the client presents it.
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }

    public var description: String { "tsr_…(redacted)" }

    public static let prefix = "tsr_"
    static let familyIDLength = 16
    static let secretLength = 32
    static let decodedLength = familyIDLength + 4 + secretLength
    static let encodedLength = prefix.utf8.count + Base64URL.encodedCount(decodedLength)

    init(familyID: [UInt8], generation: UInt32, secret: [UInt8]) {
        var bytes = familyID
        bytes += [UInt8(generation >> 24), UInt8(generation >> 16 & 0xFF), UInt8(generation >> 8 & 0xFF), UInt8(generation & 0xFF)]
        bytes += secret
        rawValue = Self.prefix + Base64URL.encode(bytes)
    }
}

/// A presented token split into its parts; only its shape has been checked, nothing else.
struct ParsedRefreshToken {
    let familyID: [UInt8]
    let familyKey: FamilyKey
    let generation: UInt32
    let digest: TokenDigest

    init(_ token: RefreshToken) throws {
        let text = token.rawValue.utf8
        guard text.count == RefreshToken.encodedLength, text.starts(with: RefreshToken.prefix.utf8),
            let bytes = try? Base64URL.decode(text.dropFirst(RefreshToken.prefix.utf8.count)),
            bytes.count == RefreshToken.decodedLength
        else { throw RefreshTokenStoreError(.malformedToken, "not a Tessera refresh token") }
        familyID = Array(bytes[0..<RefreshToken.familyIDLength])
        familyKey = FamilyKey(familyID: familyID)
        let g = RefreshToken.familyIDLength
        generation = UInt32(bytes[g]) << 24 | UInt32(bytes[g + 1]) << 16 | UInt32(bytes[g + 2]) << 8 | UInt32(bytes[g + 3])
        digest = TokenDigest(of: token)
    }
}

/// The store's name for a family: the first 16 bytes of SHA-256 over a label and the family handle.
struct FamilyKey: Hashable, Sendable {
    var high: UInt64
    var low: UInt64

    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    init(familyID: [UInt8]) {
        let digest = Digest.sha256(Array("tessera refresh family\0".utf8) + familyID)
        self.init(bytes: digest[0..<16])
    }

    init<Bytes: Collection>(bytes: Bytes) where Bytes.Element == UInt8 {
        var iterator = bytes.makeIterator()
        var high: UInt64 = 0
        var low: UInt64 = 0
        for _ in 0..<8 { high = high << 8 | UInt64(iterator.next()!) }
        for _ in 0..<8 { low = low << 8 | UInt64(iterator.next()!) }
        self.init(high: high, low: low)
    }

    var bytes: [UInt8] { bigEndianBytes(high) + bigEndianBytes(low) }
}

/// SHA-256 of a whole token's characters: what the stores keep instead of the token (RFC 9700 §4.14).
struct TokenDigest: Hashable, Sendable {
    var words: (UInt64, UInt64, UInt64, UInt64)

    init(of token: RefreshToken) { self.init(of: token.rawValue) }

    init(of token: String) {
        self.init(bytes: Digest.sha256(Array(token.utf8)))
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
    }

    init<Bytes: Collection>(bytes: Bytes) where Bytes.Element == UInt8 {
        var iterator = bytes.makeIterator()
        func next() -> UInt64 {
            var value: UInt64 = 0
            for _ in 0..<8 { value = value << 8 | UInt64(iterator.next()!) }
            return value
        }
        words = (next(), next(), next(), next())
    }

    var bytes: [UInt8] {
        bigEndianBytes(words.0) + bigEndianBytes(words.1) + bigEndianBytes(words.2) + bigEndianBytes(words.3)
    }

    /// Constant time: digests of secrets are compared without an early exit.
    static func == (lhs: TokenDigest, rhs: TokenDigest) -> Bool {
        ((lhs.words.0 ^ rhs.words.0) | (lhs.words.1 ^ rhs.words.1) | (lhs.words.2 ^ rhs.words.2) | (lhs.words.3 ^ rhs.words.3)) == 0
    }
}

func bigEndianBytes(_ value: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * $0)) }
}

extension FamilyKey {
    init?(hex: String) {
        let digits = Array(hex.utf8)
        guard digits.count == 32 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: 32, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        self.init(bytes: bytes)
    }

    var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(32)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
