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
        /// Each group commit that wrote records, for metrics: how many callers it released, its bytes, and the
        /// seconds its write and fsync took. Called on the writer thread: keep it cheap.
        public var onCommit: (@Sendable (_ callers: Int, _ bytes: Int, _ seconds: Double) -> Void)?

        public init(
            durability: Durability = .fsync, compactionThreshold: Int = 64 << 20, clock: WallClock = .system,
            onEvent: (@Sendable (StoreEvent) -> Void)? = nil, onCommit: (@Sendable (Int, Int, Double) -> Void)? = nil
        ) {
            self.durability = durability
            self.compactionThreshold = compactionThreshold
            self.clock = clock
            self.onEvent = onEvent
            self.onCommit = onCommit
        }
    }

    public enum StoreEvent: Sendable, Equatable {
        case tornTailDropped(file: String, offset: Int, bytes: Int)
        case compacted(generation: Int, families: Int, seconds: Double)
        case compactionFailed(String)
        case writeFailed(String)
    }

    let clock: WallClock
    let options: Options
    let directory: SecureDirectory
    let condition = NSCondition()

    // Guarded by `condition`.
    var ledger: RefreshTokenLedger
    var log = GroupCommitLog<CheckedContinuation<Void, any Error>>()
    /// A compaction waiting for the writer to start a new log.
    var switchRequest: CheckedContinuation<UInt64, any Error>?
    var compacting = false
    var logBytesSinceSnapshot = 0
    /// Bytes in the newest log (the one being appended to).
    var currentLogBytes = 0
    var snapshotGeneration: UInt64
    var logGeneration: UInt64

    // Owned by the flusher thread once it runs.
    private var logFD: Int32
    private var flusher: Thread?
    private let flusherDone = DispatchSemaphore(value: 0)

    /// Opens the store in `path` (created 0700 if missing), takes its lock, loads the newest snapshot,
    /// replays the logs, drops a torn last record, and starts the writer.
    public init(directory path: String, options: Options = Options()) throws {
        self.options = options
        clock = options.clock
        let directory = try storeFiles { try SecureDirectory(path: path) }
        self.directory = directory
        let state: StoreLoader.State
        do {
            state = try storeFiles { try StoreLoader(directory: directory, mode: .open, onEvent: options.onEvent).load() }
        } catch let damage as StoreDamage {
            throw damage.error(in: path)
        }
        ledger = state.ledger
        snapshotGeneration = state.snapshotGeneration
        logGeneration = state.logGeneration
        logBytesSinceSnapshot = state.logBytes
        currentLogBytes = state.lastLogBytes
        logFD = try storeFiles { try directory.openFile(StoreFileName.log(state.logGeneration), writable: true) }
        _ = lseek(logFD, 0, SEEK_END)
        // The writer holds the store until `close()`: a store that is opened must be closed.
        let thread = Thread {
            // Named from inside (on Linux a name set before start is lost); pthread names hold 15 bytes.
            Thread.current.name = "tessera-writer"
            self.runFlusher()
        }
        flusher = thread
        thread.start()
    }

    /// Why the store refuses every change (a failed write or fsync, or closed), or nil while it accepts them.
    public var refusal: String? {
        withCondition { (try? log.checkUsable()) == nil ? (log.failure?.message ?? "the refresh-token store is closed") : nil }
    }

    /// Waits for queued writes, stops the writer, and releases the lock. Further calls fail.
    public func close() {
        condition.lock()
        let wasRunning = log.close() && flusher != nil
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
            try log.checkUsable()
            let (changes, result) = plan(ledger, RefreshTokenLedger.seconds(clock.now()))
            for change in changes {
                ledger.apply(change)
                _ = log.append { StoreFormat.frame(StoreFormat.payload(change), into: &$0) }
            }
            if !changes.isEmpty { condition.signal() }
            // Also a result that wrote nothing may rest on records not yet durable (a retry's successor).
            return (result, log.appendedLSN)
        }
        try await waitUntilDurable(lsn)
        return try result.get()
    }

    func inspect<T>(_ body: (inout RefreshTokenLedger, Int64) -> T) async throws -> T {
        let (result, lsn) = try withCondition {
            try log.checkUsable()
            return (body(&ledger, RefreshTokenLedger.seconds(clock.now())), log.appendedLSN)
        }
        try await waitUntilDurable(lsn)
        return result
    }

    public func statistics() async -> RefreshTokenStoreStatistics {
        withCondition {
            RefreshTokenStoreStatistics(
                families: ledger.liveCount, revokedFamilies: ledger.count - ledger.liveCount, retryRecords: ledger.retries.count,
                logBytes: logBytesSinceSnapshot + log.pending.count, generation: Int(logGeneration))
        }
    }

    func withCondition<T>(_ body: () throws -> T) rethrows -> T {
        condition.lock()
        defer { condition.unlock() }
        return try body()
    }

    private func waitUntilDurable(_ lsn: UInt64) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            let admission = withCondition { log.await(lsn, continuation) }
            switch admission {
            case .durable: continuation.resume()
            case .failed(let error): continuation.resume(throwing: error)
            case .queued: break
            }
        }
    }

    // MARK: Group commit

    private func runFlusher() {
        defer { flusherDone.signal() }
        condition.lock()
        while true {
            let step = log.nextStep(switchRequested: switchRequest != nil)
            let request = switchRequest
            switch step {
            case .sleep:
                condition.wait()
                continue
            case .stop:
                condition.unlock()
                return
            case .abandon(let error, let stranded):
                // Nothing more may be written: fail whoever is left, then wait for close.
                switchRequest = nil
                condition.unlock()
                for waiter in stranded { waiter.resume(throwing: error) }
                request?.resume(throwing: error)
                condition.lock()
            case .write(let batch, let lsn):
                switchRequest = nil
                let durableEnd = currentLogBytes
                condition.unlock()
                let started = DispatchTime.now().uptimeNanoseconds
                let outcome = write(batch, switchingLog: request != nil, durableEnd: durableEnd)
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                condition.lock()
                let shouldCompact = finish(batch, through: lsn, outcome, request: request, seconds: seconds)
                condition.unlock()
                if shouldCompact { startBackgroundCompaction() }
                condition.lock()
            }
        }
    }

    /// Writes and fsyncs a batch (outside the lock), then starts a new log if a compaction asked.
    /// On failure the log is cut back to `durableEnd`, where it ended before the batch: every caller of the
    /// batch is told it failed, so none of its records may come back when the store is opened again.
    private func write(_ batch: [UInt8], switchingLog: Bool, durableEnd: Int) -> Result<UInt64?, RefreshTokenStoreError> {
        let result = writeAndSync(batch, switchingLog: switchingLog)
        guard case .failure(let error) = result, !batch.isEmpty else { return result }
        // A full disk (ENOSPC, EFBIG) may have let part of the batch in: whole records of it would be replayed.
        // An fsync that failed (EIO) may have left any of it on disk. Shrinking a file needs no free space.
        if ftruncate(logFD, off_t(durableEnd)) != 0 || fdatasync(logFD) != 0 {
            let reason = String(cString: strerror(errno))
            return .failure(
                RefreshTokenStoreError(
                    .unavailable,
                    "\(error.message); cutting the log back to its last acknowledged record failed too (\(reason)): records of the failed group may reappear after a restart"
                ))
        }
        _ = lseek(logFD, off_t(durableEnd), SEEK_SET)
        return result
    }

    private func writeAndSync(_ batch: [UInt8], switchingLog: Bool) -> Result<UInt64?, RefreshTokenStoreError> {
        do {
            if !batch.isEmpty {
                do { try writeAll(logFD, batch) } catch let error as FileError {
                    // writeAll knows only the descriptor: name the file for the operator.
                    throw FileError.system("write", "the refresh-token log", error.errno ?? EIO)
                }
                if options.durability == .fsync, fdatasync(logFD) != 0 {
                    throw FileError.system("fsync", "the refresh-token log", errno)
                }
            }
            return .success(switchingLog ? try switchLog() : nil)
        } catch {
            if let error = error as? FileError { return .failure(RefreshTokenStoreError(error)) }
            return .failure(error as? RefreshTokenStoreError ?? RefreshTokenStoreError(.unavailable, "\(error)"))
        }
    }

    /// Called with the lock held, which it drops while resuming callers and takes again: settles a
    /// written batch's waiters (and the compaction that asked for a new log). True when a compaction is due.
    private func finish(
        _ batch: [UInt8], through lsn: UInt64, _ outcome: Result<UInt64?, RefreshTokenStoreError>,
        request: CheckedContinuation<UInt64, any Error>?, seconds: Double
    ) -> Bool {
        var ready: [CheckedContinuation<Void, any Error>] = []
        var failed: (RefreshTokenStoreError, [CheckedContinuation<Void, any Error>])?
        switch outcome {
        case .success:
            logBytesSinceSnapshot += batch.count
            currentLogBytes += batch.count
            ready = log.written(through: lsn)
        case .failure(let error):
            failed = log.writeFailed(error.message)
        }
        let shouldCompact = log.failure == nil && !compacting && logBytesSinceSnapshot > options.compactionThreshold
        condition.unlock()
        if case .failure(let error) = outcome { options.onEvent?(.writeFailed(error.message)) }
        if !batch.isEmpty, case .success = outcome { options.onCommit?(ready.count, batch.count, seconds) }
        for waiter in ready { waiter.resume() }
        if let (error, waiters) = failed {
            for waiter in waiters { waiter.resume(throwing: error) }
        }
        if let request {
            switch outcome {
            case .success(let generation): request.resume(returning: generation!)
            case .failure(let error): request.resume(throwing: error)
            }
        }
        condition.lock()
        return shouldCompact
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
}
