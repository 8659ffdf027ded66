public import Foundation
public import TesseraJOSE

/// Trusted keys from a JWK Set file, reloaded when the file changes.
///
/// The file is checked at most once per `checkInterval` (modification time, size and inode), so the
/// request path pays a `stat` now and then and nothing more. A changed file that does not parse, or
/// holds no usable key, is logged and ignored: the previous keys stay in force.
public final class JWKSFileKeySource: KeySource, @unchecked Sendable {
    public let path: String
    private let allowedAlgorithms: Set<JWSAlgorithm>?
    private let checkInterval: Double
    private let logger: KeySourceLogger?
    private let clock: MonotonicClock
    private let state: Locked<State>

    private struct Stamp: Equatable {
        let modified: Date?
        let size: Int
        let inode: Int
    }
    private struct State {
        var keys: VerificationKeySet
        var stamp: Stamp
        var lastCheck: Double
    }

    static let maximumFileSize = 1 << 20

    /// Loads the file now; a missing or invalid file is an error here, at start-up.
    public init(
        path: String, allowedAlgorithms: Set<JWSAlgorithm>? = nil, checkInterval: TimeInterval = 1,
        logger: KeySourceLogger? = nil
    ) throws {
        self.path = path
        self.allowedAlgorithms = allowedAlgorithms
        self.checkInterval = checkInterval
        self.logger = logger
        self.clock = .system
        let stamp: Stamp
        do { stamp = try Self.stamp(path) } catch {
            throw VerifierConfigurationError(.unreadableKeys, "cannot read the JWK Set file \(path)")
        }
        let keys = try Self.load(path, allowedAlgorithms: allowedAlgorithms, logger: logger)
        state = Locked(State(keys: keys, stamp: stamp, lastCheck: clock.now()))
    }

    public func currentKeys() async throws -> VerificationKeySet {
        reloadIfChanged().keys
    }

    public func keysAfterUnknownKeyID() async -> VerificationKeySet? {
        let (keys, changed) = reloadIfChanged()
        return changed ? keys : nil
    }

    private func reloadIfChanged() -> (keys: VerificationKeySet, changed: Bool) {
        state.withLock { state in
            let now = clock.now()
            guard now - state.lastCheck >= checkInterval else { return (state.keys, false) }
            state.lastCheck = now
            guard let stamp = try? Self.stamp(path), stamp != state.stamp else { return (state.keys, false) }
            state.stamp = stamp
            do {
                state.keys = try Self.load(path, allowedAlgorithms: allowedAlgorithms, logger: logger)
                logger?(KeySourceEvent(level: .info, message: "reloaded \(state.keys.keys.count) key(s) from \(path)"))
                return (state.keys, true)
            } catch {
                logger?(KeySourceEvent(level: .error, message: "ignoring changed \(path): \(error); the previous keys stay in force"))
                return (state.keys, false)
            }
        }
    }

    private static func stamp(_ path: String) throws -> Stamp {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return Stamp(
            modified: attributes[.modificationDate] as? Date, size: (attributes[.size] as? Int) ?? -1,
            inode: (attributes[.systemFileNumber] as? Int) ?? -1)
    }

    static func load(_ path: String, allowedAlgorithms: Set<JWSAlgorithm>?, logger: KeySourceLogger?) throws -> VerificationKeySet {
        let url = URL(fileURLWithPath: path)
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw VerifierConfigurationError(.unreadableKeys, "cannot read the JWK Set file \(path)")
        }
        guard data.count <= maximumFileSize else { throw VerifierConfigurationError(.unreadableKeys, "\(path) is larger than 1 MiB") }
        let keys = try keySet(fromJWKS: [UInt8](data), origin: path, allowedAlgorithms: allowedAlgorithms, logger: logger)
        return keys
    }
}

/// Parses a JWK Set into trusted keys; asymmetric keys only, none usable is an error.
func keySet(
    fromJWKS bytes: [UInt8], origin: String, allowedAlgorithms: Set<JWSAlgorithm>?,
    logger: KeySourceLogger?
) throws -> VerificationKeySet {
    let keys: VerificationKeySet
    do {
        keys = try VerificationKeySet(jwks: try JWKSet(jsonBytes: bytes), algorithms: allowedAlgorithms)
    } catch let error as JOSEError {
        throw VerifierConfigurationError(.noUsableKey, "\(origin) is not a usable JWK Set: \(error.message)")
    }
    for skipped in keys.skipped {
        logger?(
            KeySourceEvent(
                level: .warning,
                message: "\(origin): key \(skipped.keyID.map { String($0.prefix(64)) } ?? "without kid") left out: \(skipped.error.message)"))
    }
    guard !keys.keys.isEmpty else { throw VerifierConfigurationError(.noUsableKey, "\(origin) holds no usable verification key") }
    return keys
}
