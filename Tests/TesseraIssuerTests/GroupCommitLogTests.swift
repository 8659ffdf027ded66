import Foundation
import Testing

@testable import TesseraIssuer

/// The group commit's bookkeeping on its own, step by step, with plain integers as waiters: no threads,
/// files or timing (the store's crash and fault tests cover the I/O around it).
@Suite("Group-commit log: the state machine behind the refresh-token store's writer")
struct GroupCommitLogTests {
    typealias Log = GroupCommitLog<Int>

    func frame(_ byte: UInt8) -> (inout [UInt8]) -> Void { { $0.append(byte) } }

    @Test("Records get increasing sequence numbers; one batch takes all that is pending; a waiter is released only once its record is durable")
    func batching() {
        var log = Log()
        let idle = log.nextStep(switchRequested: false)
        #expect(idle.isSleep)
        let one = log.append(frame(1))
        let two = log.append(frame(2))
        #expect(one == 1 && two == 2)
        guard case .queued = log.await(2, 20) else {
            Issue.record("record 2 is not durable yet")
            return
        }
        guard case .write(let batch, let through) = log.nextStep(switchRequested: false) else {
            Issue.record("expected a write")
            return
        }
        #expect(batch == [1, 2] && through == 2 && log.pending.isEmpty)
        // Appended while the batch is being written: the next batch, and its waiter stays queued.
        let three = log.append(frame(3))
        #expect(three == 3)
        guard case .queued = log.await(3, 30) else {
            Issue.record("record 3 is not durable yet")
            return
        }
        let released = log.written(through: 2)
        #expect(released == [20])
        #expect(log.durableLSN == 2)
        guard case .durable = log.await(1, 10) else {
            Issue.record("record 1 is durable")
            return
        }
        guard case .write(let next, 3) = log.nextStep(switchRequested: false) else {
            Issue.record("expected the second batch")
            return
        }
        #expect(next == [3])
        let last = log.written(through: 3)
        #expect(last == [30])
    }

    @Test("A log switch alone is a write of an empty batch; with nothing pending and no switch the writer sleeps, or stops once closing")
    func switchAndClose() throws {
        var log = Log()
        guard case .write(let batch, 0) = log.nextStep(switchRequested: true) else {
            Issue.record("a switch is a write")
            return
        }
        #expect(batch.isEmpty)
        let first = log.close()
        let second = log.close()
        #expect(first && !second, "a second close is a no-op")
        #expect(throws: RefreshTokenStoreError(.unavailable, "")) { try log.checkUsable() }
        // Closing still writes what was queued before it, then stops.
        var queued = Log()
        _ = queued.append(frame(7))
        _ = queued.close()
        guard case .write([7], 1) = queued.nextStep(switchRequested: false) else {
            Issue.record("queued records are written first")
            return
        }
        let none = queued.written(through: 1)
        #expect(none.isEmpty)
        let end = queued.nextStep(switchRequested: false)
        #expect(end.isStop)
    }

    @Test("THREATS C3: one failed write fails every waiter and every later operation for good; nothing more is written")
    func failure() throws {
        var log = Log()
        _ = log.append(frame(1))
        _ = log.await(1, 10)
        guard case .write = log.nextStep(switchRequested: false) else {
            Issue.record("expected a write")
            return
        }
        _ = log.append(frame(2))
        _ = log.await(2, 20)
        let (error, failed) = log.writeFailed("EIO")
        #expect(failed == [10, 20] && error.code == .unavailable && error.message.contains("EIO"))
        #expect(log.pending.isEmpty && log.durableLSN == 0)
        #expect(throws: RefreshTokenStoreError(.unavailable, "")) { try log.checkUsable() }
        guard case .failed = log.await(1, 11) else {
            Issue.record("a failed log admits no waiter")
            return
        }
        // A record appended by a caller that raced the failure is abandoned, never written; its caller is refused.
        _ = log.append(frame(3))
        guard case .failed = log.await(3, 30) else {
            Issue.record("a failed log admits no waiter")
            return
        }
        guard case .abandon(_, let stranded) = log.nextStep(switchRequested: false) else {
            Issue.record("expected abandon")
            return
        }
        #expect(stranded.isEmpty && log.pending.isEmpty)
        // A compaction's log switch is refused too.
        guard case .abandon = log.nextStep(switchRequested: true) else {
            Issue.record("a switch after failure is abandoned")
            return
        }
        let asleep = log.nextStep(switchRequested: false)
        #expect(asleep.isSleep)
        _ = log.close()
        let stopped = log.nextStep(switchRequested: false)
        #expect(stopped.isStop)
    }
}

extension GroupCommitLog.Step {
    var isSleep: Bool {
        if case .sleep = self { return true }
        return false
    }
    var isStop: Bool {
        if case .stop = self { return true }
        return false
    }
}
