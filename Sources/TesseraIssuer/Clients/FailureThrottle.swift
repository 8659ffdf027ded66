public import Foundation
import TesseraJOSE

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Slows down guessing of client secrets and passwords, without letting a third party lock the real
/// client or user out. Failures are counted per key; past a key's free failures it is blocked for a delay
/// that doubles with each further failure, up to `maximumDelay`. Only failures count, so well-behaved
/// clients never wait. The keys (`docs/configuration.md`, "Throttling"):
///
/// - a client id *from one address* (`client(_:address:)`): a secret guessed from elsewhere never holds
///   back the client presenting its correct secret from its own address (client secrets are 256 random
///   bits, so they need no global count);
/// - a username *from one address*, and the username alone with a much higher ceiling
///   (`user(_:address:)`): one address gets 5 free guesses at a user, a botnet a few dozen in all;
/// - an address alone, with a high ceiling: a sprayer trying many clients or users from one address.
///
/// Addresses are IPv4 addresses or IPv6 /64 prefixes (one host usually holds a whole /64). Keys are kept as
/// 128-bit digests of their exact bytes, so every entry costs the same memory whatever a request sends, and
/// the number of entries is bounded (`maximumKeys`): idle keys go first, then the stalest.
public final class FailureThrottle: @unchecked Sendable {
    public struct Policy: Sendable {
        /// Failures allowed within `window` for a client or user *from one address* before delays start.
        public var freeFailures = 5
        /// Failures allowed for one username from all addresses together.
        public var userFreeFailures = 50
        /// Failures allowed from one address, whatever client or user they named.
        public var addressFreeFailures = 100
        /// A key's count starts again once it has had no failure and no block for this long.
        public var window: Double = 60
        public var baseDelay: Double = 1
        public var maximumDelay: Double = 300
        public var maximumKeys = 100_000

        public init() {}

        public func freeFailures(_ kind: Key.Kind) -> Int {
            switch kind {
            case .clientAtAddress, .userAtAddress: freeFailures
            case .user: userFreeFailures
            case .address: addressFreeFailures
            }
        }
    }

    /// One thing failures are counted for: a digest of what it names, and which kind of thing it is.
    public struct Key: Hashable, Sendable {
        public enum Kind: UInt8, Sendable {
            case clientAtAddress = 1
            case userAtAddress
            case user
            case address
        }

        public let kind: Kind
        private let high: UInt64
        private let low: UInt64

        init(_ kind: Kind, _ parts: [UInt8]...) {
            var input: [UInt8] = [kind.rawValue]
            for part in parts {
                withUnsafeBytes(of: UInt32(part.count).bigEndian) { input += $0 }
                input += part
            }
            let digest = Digest.sha256(input)
            self.kind = kind
            high = digest[0..<8].reduce(0) { $0 << 8 | UInt64($1) }
            low = digest[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
        }

        /// What a shared store files the count under: the kind and the 128-bit digest, in hex.
        public var storageKey: String {
            String(format: "%02x%016llx%016llx", kind.rawValue, high, low)
        }

        /// Cleared by a success of what it names (the count of a whole user or address is not).
        public var clearedBySuccess: Bool { kind == .clientAtAddress || kind == .userAtAddress }
    }

    /// The keys of a client authentication: the client from this address, and the address.
    public static func client(_ clientID: String, address: String?) -> [Key] {
        let bucket = address.map(addressBucket) ?? []
        return [Key(.clientAtAddress, Array(clientID.utf8), bucket)] + (address == nil ? [] : [Key(.address, bucket)])
    }

    /// The keys of a password check (the token endpoint's password grant and the sign-in page share them):
    /// the user from this address, the user from anywhere, and the address.
    public static func user(_ username: String, address: String?) -> [Key] {
        let bucket = address.map(addressBucket) ?? []
        let name = Array(username.utf8)
        return [Key(.userAtAddress, name, bucket), Key(.user, name)] + (address == nil ? [] : [Key(.address, bucket)])
    }

    /// The bytes an address is counted under: an IPv4 address whole (also when IPv4-mapped), an IPv6
    /// address by its /64 prefix; anything else as written.
    public static func addressBucket(_ address: String) -> [UInt8] {
        var v4 = in_addr()
        if inet_pton(AF_INET, address, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, address, &v6) == 1 else { return Array(address.utf8) }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff { return Array(bytes[12..<16]) }
        return Array(bytes[0..<8])
    }

    private struct Entry {
        var failures = 0
        var lastFailure: Double
        var blockedUntil: Double = 0
    }

    public let policy: Policy
    private let now: @Sendable () -> Double
    private let lock = NSLock()
    private var entries: [Key: Entry] = [:]

    /// `now` is a monotonic clock in seconds (wall-clock steps must not lift or extend a block).
    public init(policy: Policy = Policy(), now: @escaping @Sendable () -> Double = { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }) {
        self.policy = policy
        self.now = now
    }

    /// Seconds to wait (rounded up) when any of `keys` is blocked; nil when the request may proceed.
    public func retryAfter(_ keys: [Key]) -> Int? {
        let time = now()
        let wait = lock.withLock { keys.compactMap { entries[$0].map { $0.blockedUntil - time } }.max() ?? 0 }
        return wait > 0 ? Int(wait.rounded(.up)) : nil
    }

    public func recordFailure(_ keys: [Key]) {
        let time = now()
        lock.withLock {
            for key in keys {
                var entry = entries[key] ?? Entry(lastFailure: time)
                // Quiet for a whole window after its last failure and its last block: start again. Measured
                // from the block's end, so a guesser who waits out each block keeps doubling it.
                if time - max(entry.lastFailure, entry.blockedUntil) > policy.window { entry.failures = 0 }
                entry.failures += 1
                entry.lastFailure = time
                let free = policy.freeFailures(key.kind)
                if entry.failures > free {
                    let exponent = Double(min(entry.failures - free - 1, 30))
                    entry.blockedUntil = time + min(policy.maximumDelay, policy.baseDelay * pow(2, exponent))
                }
                entries[key] = entry
            }
            if entries.count > policy.maximumKeys { evict(now: time) }
        }
    }

    /// The right secret or password: clears the count of that client or user *from that address* only.
    public func recordSuccess(_ keys: [Key]) {
        lock.withLock { for key in keys where key.clearedBySuccess { entries[key] = nil } }
    }

    /// Drops keys that would start again anyway (no failure and no block for a window); if more than three
    /// quarters of the bound are left, keeps the freshest three quarters. Either way the next eviction is a
    /// quarter of the bound away: a flood of distinct keys that are all still live must not cost a full scan
    /// on every failure.
    private func evict(now time: Double) {
        entries = entries.filter { time - max($0.value.lastFailure, $0.value.blockedUntil) <= policy.window }
        let target = policy.maximumKeys * 3 / 4
        if entries.count > target {
            let keep = entries.sorted { $0.value.lastFailure > $1.value.lastFailure }.prefix(target)
            entries = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
        }
    }

    /// How many keys are tracked (for tests of the memory bound).
    var trackedKeys: Int { lock.withLock { entries.count } }
}
