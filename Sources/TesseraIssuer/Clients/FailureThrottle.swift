public import Foundation

/// Slows down guessing: failed client authentications and failed passwords are counted per key
/// (`client:ID`, `user:NAME`, `addr:IP`); past a few free failures a key is blocked for a delay that
/// doubles with each further failure. Only failures count, so well-behaved clients never wait, and a
/// success clears the client's or user's count. Memory is bounded: the stalest keys are dropped.
public final class FailureThrottle: @unchecked Sendable {
    public struct Policy: Sendable {
        /// Failures allowed per key within `window` before delays start.
        public var freeFailures = 5
        public var window: Double = 60
        public var baseDelay: Double = 1
        public var maximumDelay: Double = 300
        public var maximumKeys = 100_000

        public init() {}
    }

    private struct Entry {
        var failures = 0
        var windowStart: Double
        var blockedUntil: Double = 0
        var lastSeen: Double
    }

    /// The keys failures are counted under. The token endpoint and the sign-in page share them, so a
    /// user's failed passwords count the same wherever they were tried.
    public static func clientKey(_ clientID: String) -> String { "client:" + clientID }
    public static func userKey(_ username: String) -> String { "user:" + username.prefix(255) }
    public static func addressKey(_ address: String) -> String { "addr:" + address }

    public let policy: Policy
    private let now: @Sendable () -> Double
    private let lock = NSLock()
    private var entries: [String: Entry] = [:]

    /// `now` is a monotonic clock in seconds (wall-clock steps must not lift or extend a block).
    public init(policy: Policy = Policy(), now: @escaping @Sendable () -> Double = { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }) {
        self.policy = policy
        self.now = now
    }

    /// Seconds to wait (rounded up) when any of `keys` is blocked; nil when the request may proceed.
    public func retryAfter(_ keys: [String]) -> Int? {
        let time = now()
        let wait = lock.withLock { keys.compactMap { entries[$0].map { $0.blockedUntil - time } }.max() ?? 0 }
        return wait > 0 ? Int(wait.rounded(.up)) : nil
    }

    public func recordFailure(_ keys: [String]) {
        let time = now()
        lock.withLock {
            for key in keys {
                var entry = entries[key] ?? Entry(windowStart: time, lastSeen: time)
                if time - entry.windowStart > policy.window, entry.blockedUntil <= time {
                    entry.failures = 0
                    entry.windowStart = time
                }
                entry.failures += 1
                entry.lastSeen = time
                if entry.failures > policy.freeFailures {
                    let exponent = Double(min(entry.failures - policy.freeFailures - 1, 30))
                    entry.blockedUntil = time + min(policy.maximumDelay, policy.baseDelay * pow(2, exponent))
                }
                entries[key] = entry
            }
            if entries.count > policy.maximumKeys { evict(now: time) }
        }
    }

    public func recordSuccess(_ keys: [String]) {
        lock.withLock { for key in keys { entries[key] = nil } }
    }

    /// Drops keys no longer blocked and idle past the window; if more than three quarters of the bound are
    /// left, keeps the freshest three quarters. Either way the next eviction is a quarter of the bound away:
    /// a flood of distinct keys that are all still live must not cost a full scan on every failure.
    private func evict(now time: Double) {
        entries = entries.filter { $0.value.blockedUntil > time || time - $0.value.lastSeen < policy.window }
        let target = policy.maximumKeys * 3 / 4
        if entries.count > target {
            let keep = entries.sorted { $0.value.lastSeen > $1.value.lastSeen }.prefix(target)
            entries = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
        }
    }

    /// How many keys are tracked (for tests of the memory bound).
    var trackedKeys: Int { lock.withLock { entries.count } }
}
