/// A stable error code of one module's error type (`Domain`): a string compared by value. Codes are static
/// members of a constrained extension (`extension ErrorCode where Domain == JOSEError`), so a new one is
/// added without breaking anyone's `switch`, as a public enum case would (swift-crypto's lesson).
public struct ErrorCode<Domain>: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
}

/// An error that carries a stable code: what callers and tests compare. Two such errors are equal when
/// their codes are; the messages are for logs and may change.
public protocol CodedError: Error, Sendable, Equatable, CustomStringConvertible {
    associatedtype Domain
    var code: ErrorCode<Domain> { get }
    /// For logs: which check failed, on what; never a secret, a key or a token.
    var message: String { get }
}

extension CodedError {
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    /// `code: message`, unless the error says otherwise.
    public var description: String { "\(code): \(message)" }
}
