import Foundation

/// A value guarded by a lock, for the little mutable state key sources keep.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

/// Monotonic seconds, for cache ages and cooldowns (wall-clock steps must not move them).
struct MonotonicClock: Sendable {
    let now: @Sendable () -> Double
    static let system = MonotonicClock { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}
