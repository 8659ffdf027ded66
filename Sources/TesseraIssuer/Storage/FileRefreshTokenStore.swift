import Foundation
import TesseraJOSE
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A crash-safe refresh-token store in one folder: an append-only log of changes with a checksum per
/// record, snapshots written by compaction, and an in-memory index rebuilt at start.
///
/// Writes use group commit: callers append their record and wait; one thread writes whatever has
/// accumulated and fsyncs once for all of them, and no caller returns before its record is durable.
/// After a failed write or fsync the store refuses every further operation until it is reopened
/// (after EIO the kernel may have dropped the dirty pages, so retrying could acknowledge lost data).
/// Call `close()` when done: it drains queued writes, stops the writer thread and releases the lock.
/// Format and recovery: `docs/refresh-token-store.md`.
public final class FileRefreshTokenStore: LedgerBackedStore, @unchecked Sendable {
    /// The store's folder inside the data folder (`--data`, default `data/`) that the CLI and server use.
    public static let folderName = "refresh-tokens"

    public struct Options: Sendable {
        public enum Durability: Sendable {
            /// fdatasync after each group of writes (the default, and the only safe choice).
            case fsync
            /// No fsync: acknowledged writes are lost on power failure (kept for benchmarks, to show the disk's share).
            case unsafeNoSync
        }

        public var durability: Durability = .fsync
        /// Compact once the logs since the last snapshot exceed this many bytes.
        public var compactionThreshold = 64 << 20
        public var clock: WallClock = .system
        /// Things an operator should see: a torn tail dropped at start, compactions, I/O failures.
        public var onEvent: (@Sendable (StoreEvent) -> Void)?

        public init(durability: Durability = .fsync, compactionThreshold: Int = 64 << 20, clock: WallClock = .system,
                    onEvent: (@Sendable (StoreEvent) -> Void)? = nil) {
            self.durability = durability
            self.compactionThreshold = compactionThreshold
            self.clock = clock
            self.onEvent = onEvent
        }
    }

    public enum StoreEvent: Sendable, Equatable {
        case tornTailDropped(file: String, offset: Int, bytes: Int)
        case compacted(generation: Int, families: Int, seconds: Double)
        case compactionFailed(String)
        case writeFailed(String)
    }

    public struct CompactionReport: Sendable {
        public let generation: Int
        public let families: Int
        public let snapshotBytes: Int
        public let seconds: Double
    }

    let clock: WallClock
    private let options: Options
    private let directory: SecureDirectory
    private let condition = NSCondition()

    // Guarded by `condition`.
    private var ledger: RefreshTokenLedger
    private var pending: [UInt8] = []
    private var appendedLSN: UInt64 = 0
    private var durableLSN: UInt64 = 0
    private var waiters: [(lsn: UInt64, continuation: CheckedContinuation<Void, Error>)] = []
    private var failure: RefreshTokenStoreError?
    private var closing = false
    private var switchRequest: CheckedContinuation<UInt64, Error>?
    private var compacting = false
    private var logBytesSinceSnapshot = 0
    /// Bytes in the newest log (the one being appended to).
    private var currentLogBytes = 0
    private var snapshotGeneration: UInt64
    private var logGeneration: UInt64

    // Owned by the flusher thread once it runs.
    private var logFD: Int32
    private var flusher: Thread?
    private let flusherDone = DispatchSemaphore(value: 0)

    /// Opens the store in `path` (created 0700 if missing), takes its lock, loads the newest snapshot,
    /// replays the logs, drops a torn last record, and starts the writer.
    public init(directory path: String, options: Options = Options()) throws {
        self.options = options
        clock = options.clock
        directory = try SecureDirectory(path: path)
        let state: StoreLoader.State
        do {
            state = try StoreLoader(directory: directory, mode: .open, onEvent: options.onEvent).load()
        } catch let damage as StoreDamage {
            throw damage.error(in: path)
        }
        ledger = state.ledger
        snapshotGeneration = state.snapshotGeneration
        logGeneration = state.logGeneration
        logBytesSinceSnapshot = state.logBytes
        currentLogBytes = state.lastLogBytes
        logFD = try directory.openFile(StoreFileName.log(state.logGeneration), writable: true)
        _ = lseek(logFD, 0, SEEK_END)
        // The writer holds the store until `close()`: a store that is opened must be closed.
        let thread = Thread { self.runFlusher() }
        thread.name = "tessera-refresh-store-writer"
        flusher = thread
        thread.start()
    }

    /// Waits for queued writes, stops the writer, and releases the lock. Further calls fail.
    public func close() {
        condition.lock()
        let wasRunning = !closing && flusher != nil
        closing = true
        condition.broadcast()
        condition.unlock()
        if wasRunning {
            flusherDone.wait()
            // A compaction still writing its snapshot must finish before the lock is released.
            condition.lock()
            while compacting { condition.wait() }
            condition.unlock()
            closeFile(logFD)
            directory.unlock()
        }
    }

    // MARK: LedgerBackedStore

    func transact<T>(_ plan: (RefreshTokenLedger, Int64) -> (changes: [LedgerChange], result: Result<T, RefreshTokenStoreError>)) async throws -> T {
        let (result, lsn): (Result<T, RefreshTokenStoreError>, UInt64) = try withCondition {
            try checkUsable()
            let (changes, result) = plan(ledger, RefreshTokenLedger.seconds(clock.now()))
            for change in changes {
                ledger.apply(change)
                StoreFormat.frame(StoreFormat.payload(change), into: &pending)
                appendedLSN += 1
            }
            if !changes.isEmpty { condition.signal() }
            // Also a result that wrote nothing may rest on records not yet durable (a retry's successor).
            return (result, appendedLSN)
        }
        try await waitUntilDurable(lsn)
        return try result.get()
    }

    func inspect<T>(_ body: (inout RefreshTokenLedger, Int64) -> T) async throws -> T {
        let (result, lsn) = try withCondition {
            try checkUsable()
            return (body(&ledger, RefreshTokenLedger.seconds(clock.now())), appendedLSN)
        }
        try await waitUntilDurable(lsn)
        return result
    }

    public func statistics() async -> RefreshTokenStoreStatistics {
        withCondition {
            RefreshTokenStoreStatistics(families: ledger.liveCount, revokedFamilies: ledger.count - ledger.liveCount, retryRecords: ledger.retries.count,
                                        logBytes: logBytesSinceSnapshot + pending.count, generation: Int(logGeneration))
        }
    }

    private func withCondition<T>(_ body: () throws -> T) rethrows -> T {
        condition.lock()
        defer { condition.unlock() }
        return try body()
    }

    private func checkUsable() throws {
        if let failure { throw failure }
        if closing { throw RefreshTokenStoreError(.unavailable, "the refresh-token store is closed") }
    }

    private func waitUntilDurable(_ lsn: UInt64) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            condition.lock()
            if durableLSN >= lsn {
                condition.unlock()
                continuation.resume()
            } else if let failure {
                condition.unlock()
                continuation.resume(throwing: failure)
            } else {
                waiters.append((lsn, continuation))
                condition.unlock()
            }
        }
    }

    // MARK: Group commit

    private func runFlusher() {
        defer { flusherDone.signal() }
        condition.lock()
        while true {
            while pending.isEmpty && switchRequest == nil && !closing { condition.wait() }
            if pending.isEmpty && switchRequest == nil && closing { break }
            if let error = failure {
                // Nothing more may be written: fail whoever is left, then wait for close.
                let stranded = waiters.map(\.continuation)
                waiters.removeAll()
                pending.removeAll()
                let request = switchRequest
                switchRequest = nil
                condition.unlock()
                stranded.forEach { $0.resume(throwing: error) }
                request?.resume(throwing: error)
                condition.lock()
                continue
            }
            var batch: [UInt8] = []
            swap(&batch, &pending)
            pending.reserveCapacity(batch.count)
            let batchLSN = appendedLSN
            let request = switchRequest
            switchRequest = nil
            condition.unlock()

            var outcome: Result<UInt64?, RefreshTokenStoreError> = .success(nil)
            do {
                if !batch.isEmpty {
                    try writeAll(logFD, batch)
                    if options.durability == .fsync, fdatasync(logFD) != 0 {
                        throw SecureDirectory.error(.unavailable, "fsync of the refresh-token log failed", errno)
                    }
                }
                if request != nil { outcome = .success(try switchLog()) }
            } catch {
                outcome = .failure(error as? RefreshTokenStoreError ?? RefreshTokenStoreError(.unavailable, "\(error)"))
            }

            condition.lock()
            var ready: [CheckedContinuation<Void, Error>] = []
            var failed: [CheckedContinuation<Void, Error>] = []
            switch outcome {
            case .success:
                durableLSN = batchLSN
                logBytesSinceSnapshot += batch.count
                currentLogBytes += batch.count
                waiters.removeAll { waiter in
                    guard waiter.lsn <= batchLSN else { return false }
                    ready.append(waiter.continuation)
                    return true
                }
            case .failure(let error):
                // No retry: after a failed fsync the kernel may have dropped the pages (PostgreSQL's
                // "fsyncgate"), so a later success would acknowledge data that is not on disk.
                failure = RefreshTokenStoreError(.unavailable, "the refresh-token store is read-only after an I/O error (\(error.message)); restart the service once the disk is healthy")
                failed = waiters.map(\.continuation)
                waiters.removeAll()
                pending.removeAll()
            }
            let shouldCompact = failure == nil && !compacting && logBytesSinceSnapshot > options.compactionThreshold
            let currentFailure = failure
            condition.unlock()
            if case .failure(let error) = outcome { options.onEvent?(.writeFailed(error.message)) }
            ready.forEach { $0.resume() }
            failed.forEach { $0.resume(throwing: currentFailure!) }
            if let request {
                switch outcome {
                case .success(let generation): request.resume(returning: generation!)
                case .failure(let error): request.resume(throwing: error)
                }
            }
            if shouldCompact { startBackgroundCompaction() }
            condition.lock()
        }
        condition.unlock()
    }

    /// Called by the writer between batches: everything before is in the old log and fsynced; new
    /// records go to a new log, created whole (header, fsync, rename, folder fsync) before use.
    private func switchLog() throws -> UInt64 {
        let next = logGeneration + 1
        let header = StoreFormat.header(.init(kind: .log, generation: next, createdAt: RefreshTokenLedger.seconds(clock.now())))
        try directory.writeAtomically(StoreFileName.log(next)) { try writeAll($0, header) }
        let fd = try directory.openFile(StoreFileName.log(next), writable: true)
        _ = lseek(fd, 0, SEEK_END)
        closeFile(logFD)
        logFD = fd
        condition.lock()
        logGeneration = next
        currentLogBytes = header.count
        logBytesSinceSnapshot += header.count
        condition.unlock()
        return next
    }

    // MARK: Compaction

    /// Writes a snapshot of every live family and drops the logs it covers. Rotations continue while it
    /// runs: the writer switches to a new log at once, and the snapshot is built from the files, not
    /// from the live index, so no lock is held while it is written.
    @discardableResult
    public func compact() async throws -> CompactionReport {
        try withCondition {
            try checkUsable()
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

    private func finishCompaction() {
        condition.lock()
        compacting = false
        condition.broadcast()
        condition.unlock()
    }

    private func switchToNewLog() async throws -> UInt64 {
        try await withCheckedThrowingContinuation { continuation in
            condition.lock()
            if closing || failure != nil {
                condition.unlock()
                continuation.resume(throwing: failure ?? RefreshTokenStoreError(.unavailable, "the refresh-token store is closed"))
                return
            }
            switchRequest = continuation
            condition.signal()
            condition.unlock()
        }
    }

    private func startBackgroundCompaction() {
        let claimed: Bool = withCondition {
            guard !compacting, failure == nil, !closing else { return false }
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
    private func runCompaction(explicit: Bool) async throws -> CompactionReport {
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
        let (families, bytes) = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<(Int, Int), Error>) in
            let thread = Thread { [directory] in
                do {
                    continuation.resume(returning: try StoreLoader.writeSnapshot(
                        directory: directory, base: base, through: newLog - 1, generation: newLog, now: now))
                } catch let damage as StoreDamage {
                    continuation.resume(throwing: damage.error(in: directory.path))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.name = "tessera-refresh-store-compaction"
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

enum StoreFileName {
    static func log(_ generation: UInt64) -> String { "log." + padded(generation) }
    static func snapshot(_ generation: UInt64) -> String { "snapshot." + padded(generation) }

    private static func padded(_ generation: UInt64) -> String {
        let digits = String(generation)
        return String(repeating: "0", count: max(0, 12 - digits.count)) + digits
    }

    /// (kind, generation) for a store file name; nil for anything else.
    static func parse(_ name: String) -> (StoreFormat.FileKind, UInt64)? {
        let parts = name.split(separator: ".")
        guard parts.count == 2, parts[1].count == 12, let generation = UInt64(parts[1]) else { return nil }
        switch parts[0] {
        case "log": return (.log, generation)
        case "snapshot": return (.snapshot, generation)
        default: return nil
        }
    }
}
