import Foundation

/// The one error type of the key store and key ring.
public struct KeyStoreError: Error, Sendable, CustomStringConvertible, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The key folder has no manifest (create one with `tessera keys generate`).
        public static let noKeyRing = Code("no_key_ring")
        /// The manifest does not parse or breaks a rule (duplicate kid, two active keys, unknown algorithm...).
        public static let badManifest = Code("bad_manifest")
        /// A key file named by the manifest is missing or does not hold the key the manifest says.
        public static let badKeyFile = Code("bad_key_file")
        /// A key file or the folder is readable or writable by group or others, or is a symlink.
        public static let insecurePermissions = Code("insecure_permissions")
        public static let unknownKid = Code("unknown_kid")
        /// No key is active for the algorithm asked for.
        public static let noActiveKey = Code("no_active_key")
        /// A change the rotation rules do not allow (activating over an active key without the publish delay).
        public static let rotationNotAllowed = Code("rotation_not_allowed")
        /// Reading or writing the folder failed.
        public static let io = Code("io_error")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
}
