import Foundation
import TesseraJOSE

/// PKCE (RFC 7636): the token request proves it comes from whoever started the authorization.
public enum PKCE {
    public enum Method: String, Sendable {
        case s256 = "S256"
        /// Refused unless a client is configured for it (RFC 9700 §2.1.1: S256 SHOULD be used).
        case plain
    }

    /// RFC 7636 §4.1: code-verifier = 43*128unreserved, unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~".
    public static func isValidVerifier(_ verifier: String) -> Bool {
        (43...128).contains(verifier.utf8.count) && verifier.utf8.allSatisfy(isUnreserved)
    }

    /// A challenge as the authorization request must send it: for S256, 43 base64url characters.
    public static func isValidChallenge(_ challenge: String, method: Method) -> Bool {
        switch method {
        case .s256: return challenge.utf8.count == 43 && (try? Base64URL.decode(challenge))?.count == 32
        case .plain: return isValidVerifier(challenge)
        }
    }

    /// RFC 7636 §4.6: BASE64URL-ENCODE(SHA256(ASCII(code_verifier))) == code_challenge, compared in constant time.
    public static func verify(verifier: String, challenge: String, method: Method) -> Bool {
        guard isValidVerifier(verifier) else { return false }
        let derived = method == .s256 ? Base64URL.encode(Digest.sha256(Array(verifier.utf8))) : verifier
        return ConstantTime.equals(Array(derived.utf8), Array(challenge.utf8))
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || "-._~".utf8.contains(byte)
    }
}

/// What an authorization code stands for (RFC 6749 §4.1.2): bound to the client, the redirect URI, the
