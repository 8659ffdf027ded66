import Foundation

/// PEM text (RFC 7468) for the two forms Tessera reads and writes: PKCS#8 `PRIVATE KEY` and
/// SubjectPublicKeyInfo `PUBLIC KEY`. Encrypted PKCS#8 and the legacy `RSA PRIVATE KEY` /
/// `EC PRIVATE KEY` forms are refused with a message saying how to convert them.
enum PEM {
    static let privateKeyLabel = "PRIVATE KEY"
    static let publicKeyLabel = "PUBLIC KEY"

    static func encode(der: [UInt8], label: String) -> String {
        let body = Data(der).base64EncodedString()
        var lines = ["-----BEGIN \(label)-----"]
        var index = body.startIndex
        while index < body.endIndex {
            let end = body.index(index, offsetBy: 64, limitedBy: body.endIndex) ?? body.endIndex
            lines.append(String(body[index..<end]))
            index = end
        }
        lines.append("-----END \(label)-----")
        return lines.joined(separator: "\n") + "\n"
    }

    static func decode(_ text: String, label: String) throws -> [UInt8] {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        guard let first = lines.first, let last = lines.last, lines.count >= 3 else {
            throw JOSEError(.invalidKey, "not PEM text")
        }
        guard first == "-----BEGIN \(label)-----", last == "-----END \(label)-----" else {
            let found = first.hasPrefix("-----BEGIN ") ? String(first.dropFirst(11).prefix(40)) : "no PEM header"
            var hint = ""
            if found.hasPrefix("RSA PRIVATE KEY") || found.hasPrefix("EC PRIVATE KEY") {
                hint = "; convert it with: openssl pkcs8 -topk8 -nocrypt -in KEY"
            } else if found.hasPrefix("ENCRYPTED PRIVATE KEY") {
                hint = "; decrypt it with: openssl pkcs8 -in KEY -nocrypt"
            }
            throw JOSEError(.invalidKey, "expected a PEM \"\(label)\" block, found \(found)\(hint)")
        }
        let body = lines.dropFirst().dropLast().joined()
        guard let der = Data(base64Encoded: body), !der.isEmpty else {
            throw JOSEError(.invalidKey, "PEM body is not valid base64")
        }
        return [UInt8](der)
    }
}
