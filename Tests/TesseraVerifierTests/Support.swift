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
