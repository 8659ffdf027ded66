import Foundation
import Testing
@testable import TesseraJOSE

/// Loads the shared reference vectors (`../shared/vectors/` beside the repository, or `$TESSERA_VECTORS`).
/// A missing file fails the test: these vectors are required, never optional.
enum Vectors {
    static let directory: URL = {
        if let override = ProcessInfo.processInfo.environment["TESSERA_VECTORS"] {
            return URL(fileURLWithPath: override)
        }
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return repository.deletingLastPathComponent().appendingPathComponent("shared/vectors")
    }()

    static func json(_ path: String) throws -> [String: Any] {
        let url = directory.appendingPathComponent(path)
        let data = try Data(contentsOf: url)
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw VectorError("\(path) is not a JSON object")
        }
        return object
    }

    /// Re-serializes a Foundation JSON object and reads it as a JWK with Tessera's parser.
    static func jwk(_ object: Any) throws -> JWK {
        try JWK(jsonBytes: try JSONSerialization.data(withJSONObject: object))
    }

    static func jwks(_ object: Any) throws -> JWKSet {
        try JWKSet(jsonBytes: try JSONSerialization.data(withJSONObject: object))
    }
}

struct VectorError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension Array where Element == UInt8 {
    init(hex: String) throws {
        var bytes: [UInt8] = []
        var iterator = hex.utf8.makeIterator()
        while let high = iterator.next() {
            guard let low = iterator.next(), let h = Self.nibble(high), let l = Self.nibble(low) else {
                throw VectorError("bad hex")
            }
            bytes.append(h << 4 | l)
        }
        self = bytes
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// Asserts that `body` throws a `JOSEError` with exactly `code`.
func expectJOSEError<T>(_ code: JOSEError.Code, _ comment: Comment? = nil,
                        sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> T) {
    do {
        _ = try body()
        Issue.record("expected \(code), nothing was thrown. \(comment.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
    } catch let error as JOSEError {
        #expect(error.code == code, "expected \(code), got \(error). \(comment.map { "\($0)" } ?? "")",
                sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected \(code), got \(error)", sourceLocation: sourceLocation)
    }
}

/// The result of verifying a token with a set: the error code, or nil when it verified.
func verificationOutcome(_ token: String, _ keys: VerificationKeySet) -> JOSEError.Code? {
    do {
        _ = try UnverifiedJWS(parsing: token).verified(using: keys)
        return nil
    } catch let error as JOSEError {
        return error.code
    } catch {
        return JOSEError.Code("unexpected: \(error)")
    }
}

/// Flips one bit of the character at `index` of a token, keeping it inside the base64url alphabet
/// where possible, so the change reaches the signature check rather than the decoder.
func tamper(_ token: String, at index: Int) -> String {
    var bytes = Array(token.utf8)
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    if let position = alphabet.firstIndex(of: bytes[index]) {
        bytes[index] = alphabet[(position + 1) % 64]
    } else {
        bytes[index] ^= 1
    }
    return String(decoding: bytes, as: UTF8.self)
}
