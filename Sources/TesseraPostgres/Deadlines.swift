import Dispatch
import Foundation

/// The operation deadlines of one pool, checked by one timer every 50 ms: a passed deadline runs its
/// `cancel` once and is marked expired, so the operation can say why it failed.
final class Deadlines: @unchecked Sendable {
    struct Ticket: Hashable { let id: UInt64 }

    private struct Entry {
        var due: UInt64
        var cancel: @Sendable () -> Void
        var expired = false
    }

    private let lock = NSLock()
    private var entries: [UInt64: Entry] = [:]
    private var nextID: UInt64 = 0
    private let timer: any DispatchSourceTimer

    init() {
        timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "tessera.postgres.deadlines"))
        timer.schedule(deadline: .now() + .milliseconds(50), repeating: .milliseconds(50), leeway: .milliseconds(10))
        timer.setEventHandler { [weak self] in self?.fire() }
        timer.resume()
    }

    deinit { timer.cancel() }

    func stop() { timer.cancel() }

    func add(after duration: Duration, cancel: @escaping @Sendable () -> Void) -> Ticket {
        let due = DispatchTime.now().uptimeNanoseconds + UInt64(max(0, duration.nanoseconds))
        return lock.withLock {
            nextID += 1
            entries[nextID] = Entry(due: due, cancel: cancel)
            return Ticket(id: nextID)
        }
    }

    func remove(_ ticket: Ticket) { _ = lock.withLock { entries.removeValue(forKey: ticket.id) } }

    func expired(_ ticket: Ticket) -> Bool { lock.withLock { entries[ticket.id]?.expired ?? false } }

    private func fire() {
        let now = DispatchTime.now().uptimeNanoseconds
        let due = lock.withLock { () -> [@Sendable () -> Void] in
            var cancels: [@Sendable () -> Void] = []
            for (id, entry) in entries where !entry.expired && entry.due <= now {
                entries[id]?.expired = true
                cancels.append(entry.cancel)
            }
            return cancels
        }
        for cancel in due { cancel() }
    }
}

extension Duration {
    /// The whole nanoseconds of this duration, saturating at `Int64`'s ends (deadlines are minutes, not centuries).
    var nanoseconds: Int64 {
        let (whole, overflow) = components.seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let (sum, carry) = whole.addingReportingOverflow(components.attoseconds / 1_000_000_000)
        return overflow || carry ? (components.seconds < 0 ? .min : .max) : sum
    }
}
