import Foundation

/// Where log lines go: one descriptor (standard error), each line whole and in order. A line is written by the
/// thread that logs it; a line logged while another thread is writing is appended to what that thread
/// writes next, in the same `write`, so under load many lines share one system call (the per-request line
/// cost a tenth of a `/healthz` answer when each had its own, issue 19). No thread holds lines to write them
/// later: a line is out of the process once the `write` that carries it returns, which is when `log` returns
/// for the writing thread, and a few microseconds later for the others. The handlers `flush` after lines of
/// `notice` and above, which therefore return only once written.
final class LogOutput: @unchecked Sendable {
    static let standardError = LogOutput(descriptor: 2)

    let descriptor: Int32
    private let condition = NSCondition()
    private var pending: [UInt8] = []
    private var writing = false
    /// Lines appended, and lines written, since the start.
    private var appended = 0
    private var written = 0
    /// Beyond this many bytes waiting (a blocked descriptor: a paused terminal, a full pipe), loggers wait.
    static let maximumPending = 1 << 22

    init(descriptor: Int32) { self.descriptor = descriptor }

    /// Writes `line` (ending in a line feed), now or with the `write` another thread is making.
    func write(_ line: some Collection<UInt8>) {
        condition.lock()
        while pending.count > Self.maximumPending { condition.wait() }
        pending.append(contentsOf: line)
        appended += 1
        drain()
    }

    /// Returns once every line written before the call is out of the process (the lines that must not be
    /// lost to a crash right after them: `notice` and above).
    func flush() {
        condition.lock()
        let target = appended
        while writing, written < target { condition.wait() }
        drain()
    }

    /// With the lock held: writes what is pending unless another thread is writing; releases the lock.
    private func drain() {
        guard !writing else {
            condition.unlock()
            return
        }
        writing = true
        while !pending.isEmpty {
            var batch: [UInt8] = []
            swap(&batch, &pending)
            let through = appended
            condition.unlock()
            writeFully(batch)
            condition.lock()
            written = through
            condition.broadcast()
        }
        writing = false
        condition.unlock()
    }

    private func writeFully(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let count = Foundation.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if count <= 0 {
                    if count < 0, errno == EINTR { continue }
                    return  // nowhere to write (a closed descriptor): the line is lost, the server goes on
                }
                offset += count
            }
        }
    }
}
