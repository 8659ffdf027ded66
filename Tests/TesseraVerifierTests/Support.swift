import Foundation
import TesseraJOSE
@_exported import TesseraTestSupport
import Testing

@testable import TesseraVerifier

/// A manually advanced monotonic clock for cache tests.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var seconds: Double = 1000
    var now: Double { lock.withLock { seconds } }
    func advance(_ delta: Double) { lock.withLock { seconds += delta } }
    var monotonic: MonotonicClock { MonotonicClock { [self] in now } }
}

/// The outcome of verifying: the error code, or nil when accepted.
func outcome(_ verifier: AccessTokenVerifier, _ token: String) async -> TokenVerificationError.Code? {
    do {
        _ = try await verifier.verify(token)
        return nil
    } catch let error as TokenVerificationError {
        return error.code
    } catch {
        return TokenVerificationError.Code("unexpected \(error)")
    }
}

extension RemoteJWKSKeySource.Policy {
    /// The default policy with a fetch deadline of a minute, for tests that are not about deadlines: on a
    /// loaded 2-core machine (CI, with the other suites running) a loopback fetch through URLSession has
    /// taken longer than the default 5 s, and the test then saw `keys_unavailable` instead of its subject.
    static var patient: Self {
        var policy = Self()
        policy.timeout = 60
        return policy
    }
}
