import TesseraJOSE

/// Where a verifier's trusted keys come from.
///
/// `currentKeys()` is called per request and must be cheap once keys are loaded (an immutable
/// `VerificationKeySet` is returned; no actor hop on the hot path). `keysAfterUnknownKeyID()` is
/// called when a token names a `kid` the current keys lack; a source that can refresh does so at
/// most once per cooldown and returns `nil` when it did not (the token then fails at once).
public protocol KeySource: Sendable {
    func currentKeys() async throws -> VerificationKeySet
    func keysAfterUnknownKeyID() async -> VerificationKeySet?
}

/// A fixed key set.
public struct StaticKeySource: KeySource {
    public let keys: VerificationKeySet

    public init(_ keys: VerificationKeySet) { self.keys = keys }

    public func currentKeys() async throws -> VerificationKeySet { keys }
    public func keysAfterUnknownKeyID() async -> VerificationKeySet? { nil }
}

/// What the key sources tell the operator: refreshes, skipped keys, outages (logged once).
/// The library has no logging dependency; adapters forward these to their logger.
public struct KeySourceEvent: Sendable, CustomStringConvertible {
    public enum Level: Sendable { case debug, info, warning, error }
    public let level: Level
    public let message: String
    public var description: String { message }
}

public typealias KeySourceLogger = @Sendable (KeySourceEvent) -> Void
