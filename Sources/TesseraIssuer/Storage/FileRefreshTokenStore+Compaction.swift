import Foundation
import TesseraJOSE

/// Compaction: folds the snapshot and the logs before the newest into a new snapshot, while rotations go
/// on (the writer switches to a new log first; the snapshot is built from the files, not the live index).
extension FileRefreshTokenStore {
    public struct CompactionReport: Sendable {
        public let generation: Int
        public let families: Int
        public let snapshotBytes: Int
        public let seconds: Double
    }

    /// Writes a snapshot of every live family and drops the logs it covers. Rotations continue while it
    /// runs: the writer switches to a new log at once, and the snapshot is built from the files, not
    /// from the live index, so no lock is held while it is written.
    @discardableResult
    public func compact() async throws -> CompactionReport {
        try withCondition {
            try log.checkUsable()
            guard !compacting else { throw RefreshTokenStoreError(.unavailable, "a compaction is already running") }
            compacting = true
        }
        do {
            let report = try await runCompaction(explicit: true)
            return report
        } catch {
            finishCompaction()
            throw error
        }
    }

    func finishCompaction() {
        condition.lock()
        compacting = false
        condition.broadcast()
        condition.unlock()
    }

    func switchToNewLog() async throws -> UInt64 {
        try await withCheckedThrowingContinuation { continuation in
            condition.lock()
            do { try log.checkUsable() } catch {
                condition.unlock()
                continuation.resume(throwing: error)
                return
            }
            switchRequest = continuation
            condition.signal()
            condition.unlock()
        }
    }

    func startBackgroundCompaction() {
        let claimed: Bool = withCondition {
            guard !compacting, (try? log.checkUsable()) != nil else { return false }
            compacting = true
            return true
        }
        guard claimed else { return }
        Task.detached { [self] in
            do {
                _ = try await self.runCompaction(explicit: false)
            } catch {
                self.finishCompaction()
                self.options.onEvent?(.compactionFailed("\(error)"))
            }
        }
    }

    /// Folds the snapshot and every log before the newest into a new snapshot. The newest log is first
    /// switched away from when it holds records and either the caller asked (`compact()`) or there is
    /// nothing older to fold. A compaction that dies after switching leaves its frozen logs behind; the
    /// next one folds them without switching again, so repeated interruptions cannot pile up logs.
    func runCompaction(explicit: Bool) async throws -> CompactionReport {
        let started = DispatchTime.now().uptimeNanoseconds
        let (current, currentBytes, firstLog, familyCount) = withCondition {
            (logGeneration, currentLogBytes, max(snapshotGeneration, 1), ledger.count)
        }
        let hasFrozenLogs = current > firstLog
        let newLog: UInt64
        if currentBytes > StoreFormat.headerSize && (explicit || !hasFrozenLogs) {
            newLog = try await switchToNewLog()
        } else if hasFrozenLogs {
            newLog = current
        } else {
            finishCompaction()
            return CompactionReport(generation: Int(withCondition { snapshotGeneration }), families: familyCount, snapshotBytes: 0, seconds: 0)
        }
        let base = withCondition { snapshotGeneration }
        let now = RefreshTokenLedger.seconds(clock.now())
        // Building the snapshot reads files for a while: keep it off the cooperative thread pool.
        let (families, bytes) = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<(Int, Int), any Error>) in
            let thread = Thread { [directory] in
                Thread.current.name = "tessera-compact"  // from inside: see the writer thread
                do {
                    continuation.resume(
                        returning: try StoreLoader.writeSnapshot(
                            directory: directory, base: base, through: newLog - 1, generation: newLog, now: now))
                } catch let damage as StoreDamage {
                    continuation.resume(throwing: damage.error(in: directory.path))
                } catch let error as FileError {
                    continuation.resume(throwing: RefreshTokenStoreError(error))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.start()
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        withCondition {
            snapshotGeneration = newLog
            logBytesSinceSnapshot = currentLogBytes  // the snapshot covers every log before the newest
            _ = ledger.forgetExpired(at: now)
        }
        finishCompaction()
        options.onEvent?(.compacted(generation: Int(newLog), families: families, seconds: seconds))
        return CompactionReport(generation: Int(newLog), families: families, snapshotBytes: bytes, seconds: seconds)
    }
}
