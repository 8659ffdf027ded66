import Foundation

/// The bookkeeping of the refresh-token log's group commit, without I/O, threads or locks: which records
/// are appended and which durable (by log sequence number), who waits for which, and whether the log may
/// still be written. `FileRefreshTokenStore` drives it under its lock; the writer thread asks it for the
/// next step and reports how each write ended. Tested on its own (`GroupCommitLogTests`).
///
/// The rules it keeps:
/// - a waiter is released only once every record up to its sequence number is durable;
/// - one failed write or fsync fails every waiter and every later operation, for good: after EIO the
///   kernel may have dropped the dirty pages, so a later success could acknowledge lost data;
/// - closing lets queued records be written first, then stops the writer.
struct GroupCommitLog<Waiter> {
    /// Framed records appended since the writer last took a batch.
    private(set) var pending: [UInt8] = []
    /// Sequence number of the last record appended / made durable.
    private(set) var appendedLSN: UInt64 = 0
    private(set) var durableLSN: UInt64 = 0
    private(set) var failure: RefreshTokenStoreError?
    private(set) var closing = false
    private var waiters: [(lsn: UInt64, waiter: Waiter)] = []

    /// Why the log refuses work, if it does.
    func checkUsable() throws {
        if let failure { throw failure }
        if closing { throw RefreshTokenStoreError(.unavailable, "the refresh-token store is closed") }
    }

    /// Adds one framed record; returns its sequence number.
    mutating func append(_ frame: (inout [UInt8]) -> Void) -> UInt64 {
        frame(&pending)
        appendedLSN += 1
        return appendedLSN
    }

    enum Admission {
        case durable
        case failed(RefreshTokenStoreError)
        /// Queued: the waiter is handed back by `written` or `writeFailed`.
        case queued
    }

    /// A caller that needs record `lsn` durable: at once, refused, or queued.
    mutating func await(_ lsn: UInt64, _ waiter: Waiter) -> Admission {
        if durableLSN >= lsn { return .durable }
        if let failure { return .failed(failure) }
        waiters.append((lsn, waiter))
        return .queued
    }

    enum Step {
        /// Nothing to do: wait for a signal.
        case sleep
        /// Closing, and everything is written: the writer ends.
        case stop
        /// The log has failed: fail these waiters (and a log switch, if one was asked for); nothing is written.
        case abandon(RefreshTokenStoreError, stranded: [Waiter])
        /// Write `batch` (maybe empty, when only a log switch was asked for), fsync, then report `written(through:)`.
        case write(batch: [UInt8], through: UInt64)
    }

    /// What the writer does next. `switchRequested`: a compaction asked for a new log.
    mutating func nextStep(switchRequested: Bool) -> Step {
        if pending.isEmpty && !switchRequested { return closing ? .stop : .sleep }
        if let failure {
            let stranded = waiters.map(\.waiter)
            waiters.removeAll()
            pending.removeAll()
            return .abandon(failure, stranded: stranded)
        }
        var batch: [UInt8] = []
        swap(&batch, &pending)
        pending.reserveCapacity(batch.count)
        return .write(batch: batch, through: appendedLSN)
    }

    /// The batch through `lsn` is durable: the waiters it covers, to resume.
    mutating func written(through lsn: UInt64) -> [Waiter] {
        durableLSN = lsn
        var ready: [Waiter] = []
        waiters.removeAll { entry in
            guard entry.lsn <= lsn else { return false }
            ready.append(entry.waiter)
            return true
        }
        return ready
    }

    /// A write or fsync failed: the log is done for; every waiter fails with the returned error.
    mutating func writeFailed(_ message: String) -> (RefreshTokenStoreError, [Waiter]) {
        // No retry: after a failed fsync the kernel may have dropped the pages (PostgreSQL's "fsyncgate"),
        // so a later success would acknowledge data that is not on disk.
        let error = RefreshTokenStoreError(
            .unavailable, "the refresh-token store is read-only after an I/O error (\(message)); restart the service once the disk is healthy")
        failure = error
        let failed = waiters.map(\.waiter)
        waiters.removeAll()
        pending.removeAll()
        return (error, failed)
    }

    /// Starts closing; false when it was already closing.
    mutating func close() -> Bool {
        defer { closing = true }
        return !closing
    }
}
