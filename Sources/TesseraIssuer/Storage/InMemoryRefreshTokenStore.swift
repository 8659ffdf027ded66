import Foundation
import TesseraJOSE

public final class InMemoryRefreshTokenStore: LedgerBackedStore, @unchecked Sendable {
    let clock: WallClock
    private let lock = NSLock()
    private var ledger = RefreshTokenLedger()

    public init(clock: WallClock = .system) {
        self.clock = clock
    }

    func transact<T>(_ plan: (RefreshTokenLedger, Int64) -> (changes: [LedgerChange], result: Result<T, RefreshTokenStoreError>)) async throws -> T {
        let result: Result<T, RefreshTokenStoreError> = lock.withLock {
            let (changes, result) = plan(ledger, now())
            for change in changes { ledger.apply(change) }
            return result
        }
        return try result.get()
    }

    func inspect<T>(_ body: (inout RefreshTokenLedger, Int64) -> T) async throws -> T {
        lock.withLock { body(&ledger, now()) }
    }

    public func statistics() async -> RefreshTokenStoreStatistics {
        lock.withLock {
            RefreshTokenStoreStatistics(
                families: ledger.liveCount, revokedFamilies: ledger.count - ledger.liveCount, retryRecords: ledger.retries.count)
        }
    }
}
