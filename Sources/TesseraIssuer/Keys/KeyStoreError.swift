import Foundation
import TesseraJOSE

/// The one error type of the key store and key ring.
public struct KeyStoreError: CodedError {
    public typealias Code = ErrorCode<KeyStoreError>

    public let code: Code
    public let message: String
    /// The key concerned, when there is one (a missing key file, an unknown kid).
    public let kid: String?

    public init(_ code: Code, _ message: String, kid: String? = nil) {
        (self.code, self.message, self.kid) = (code, message, kid)
    }
}

/// The codes of `KeyStoreError`.
extension ErrorCode where Domain == KeyStoreError {
    /// The key folder has no manifest (create one with `tessera keys generate`).
    public static var noKeyRing: Self { Self("no_key_ring") }
    /// The manifest does not parse or breaks a rule (duplicate kid, two active keys, unknown algorithm...).
    public static var badManifest: Self { Self("bad_manifest") }
    /// A key file named by the manifest is missing or does not hold the key the manifest says.
    public static var badKeyFile: Self { Self("bad_key_file") }
    /// A key file or the folder is readable or writable by group or others, or is a symlink.
    public static var insecurePermissions: Self { Self("insecure_permissions") }
    public static var unknownKid: Self { Self("unknown_kid") }
    /// No key is active for the algorithm asked for.
    public static var noActiveKey: Self { Self("no_active_key") }
    /// A change the rotation rules do not allow (activating over an active key without the publish delay).
    public static var rotationNotAllowed: Self { Self("rotation_not_allowed") }
    /// Reading or writing the folder failed.
    public static var io: Self { Self("io_error") }
    /// The key-encryption key file is missing, not 32 bytes, or does not open a sealed key (issue 16).
    public static var badKeyEncryptionKey: Self { Self("bad_key_encryption_key") }
}
