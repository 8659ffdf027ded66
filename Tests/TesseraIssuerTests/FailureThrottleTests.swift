import Foundation
import TesseraTestSupport
import Testing

@testable import TesseraIssuer

/// The throttle model of issue 18 (items 8, 9, 11): guesses are throttled, not their victims.
@Suite("Failure throttle: who is held back")
struct FailureThrottleTests {
    @Test("Item 9: a guesser who waits out every block keeps doubling it: 1, 2, 4 … 256, then 300 s, never starting again at 1")
    func backOffKeepsDoubling() {
        let clock = Seconds()
        let throttle = FailureThrottle(now: { clock.now })
        let guesses = FailureThrottle.user("alice", address: "198.51.100.7")
        for _ in 0..<5 { throttle.recordFailure(guesses) }
        var delays: [Int] = []
        for _ in 0..<12 {
            throttle.recordFailure(guesses)
            let wait = throttle.retryAfter(guesses) ?? 0
            delays.append(wait)
            clock.advance(Double(wait))  // the guess comes the moment the block ends
            #expect(throttle.retryAfter(guesses) == nil)
        }
        #expect(delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300])
        // Guesses per day on one user from one address at that rate: 288, not ≈ 19,000.
        // Quiet for a whole window after the last block: the count starts again.
        clock.advance(61)
        for _ in 0..<5 { throttle.recordFailure(guesses) }
        #expect(throttle.retryAfter(guesses) == nil)
    }

    @Test("Item 8: wrong secrets from other addresses never hold back the client presenting its secret from its own address")
    func clientNotLockedOutByOthers() {
        let throttle = FailureThrottle(now: { 1_000 })
        for attacker in 0..<45 { throttle.recordFailure(FailureThrottle.client("demo", address: "203.0.113.\(attacker % 3)")) }
        #expect(throttle.retryAfter(FailureThrottle.client("demo", address: "203.0.113.0")) != nil)  // the attacker is slowed
        #expect(throttle.retryAfter(FailureThrottle.client("demo", address: "192.0.2.10")) == nil)  // the client is not
    }

    @Test("Item 8: failed sign-ins from one address slow that address only; a botnet meets the user's ceiling")
    func userNotLockedOutByOneAddress() {
        let throttle = FailureThrottle(now: { 1_000 })
        for _ in 0..<6 { throttle.recordFailure(FailureThrottle.user("alice", address: "203.0.113.5")) }
        #expect(throttle.retryAfter(FailureThrottle.user("alice", address: "203.0.113.5")) != nil)
        #expect(throttle.retryAfter(FailureThrottle.user("alice", address: "192.0.2.10")) == nil)
        // Another user behind the attacker's address is not held back either.
        #expect(throttle.retryAfter(FailureThrottle.user("bob", address: "203.0.113.5")) == nil)
        // Many addresses, a few guesses each: the user's own ceiling stops them.
        for address in 0..<throttle.policy.userFreeFailures {
            throttle.recordFailure(FailureThrottle.user("carol", address: "198.51.100.\(address % 250)"))
        }
        #expect(throttle.retryAfter(FailureThrottle.user("carol", address: "192.0.2.99")) == nil)
        throttle.recordFailure(FailureThrottle.user("carol", address: "198.51.100.251"))
        #expect(throttle.retryAfter(FailureThrottle.user("carol", address: "192.0.2.99")) != nil)
    }

    @Test(
        "Item 8: failures for a client that does not exist hold back neither other clients behind that address nor the address, until its high ceiling"
    )
    func sharedAddress() {
        let throttle = FailureThrottle(now: { 1_000 })
        for _ in 0..<6 { throttle.recordFailure(FailureThrottle.client("no-such-client", address: "203.0.113.5")) }
        #expect(throttle.retryAfter(FailureThrottle.client("demo", address: "203.0.113.5")) == nil)
        for index in 0...throttle.policy.addressFreeFailures {
            throttle.recordFailure(FailureThrottle.client("spray-\(index)", address: "203.0.113.6"))
        }
        #expect(throttle.retryAfter(FailureThrottle.client("demo", address: "203.0.113.6")) != nil)
    }

    @Test("Item 8: IPv6 addresses count by /64, IPv4-mapped ones as IPv4; names compare byte for byte")
    func addressBuckets() {
        #expect(FailureThrottle.addressBucket("2001:db8:1:2:aaaa::1") == FailureThrottle.addressBucket("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        #expect(FailureThrottle.addressBucket("2001:db8:1:2::1") != FailureThrottle.addressBucket("2001:db8:1:3::1"))
        #expect(FailureThrottle.addressBucket("::ffff:192.0.2.1") == FailureThrottle.addressBucket("192.0.2.1"))
        #expect(FailureThrottle.addressBucket("192.0.2.1") == [192, 0, 2, 1])
        // "é" precomposed and decomposed are equal Strings in Swift, but different users here.
        #expect(FailureThrottle.user("\u{E9}", address: nil) != FailureThrottle.user("e\u{301}", address: nil))
        let throttle = FailureThrottle(now: { 1_000 })
        for _ in 0..<6 { throttle.recordFailure(FailureThrottle.user("\u{E9}", address: "::1")) }
        #expect(throttle.retryAfter(FailureThrottle.user("e\u{301}", address: "::1")) == nil)
    }

    @Test("Item 11: an entry's size does not depend on what the request sent (keys are fixed-size digests, no heap storage)")
    func memoryIsBoundedByBytes() {
        #expect(_isPOD(FailureThrottle.Key.self))
        #expect(MemoryLayout<FailureThrottle.Key>.size <= 24)
        var policy = FailureThrottle.Policy()
        policy.maximumKeys = 1_000
        let throttle = FailureThrottle(policy: policy, now: { 1_000 })
        let long = String(repeating: "a\u{301}\u{302}\u{303}", count: 4_000)  // ≈ 28 KB of combining marks
        for index in 0..<3_000 { throttle.recordFailure(FailureThrottle.user(long + "\(index)", address: "192.0.2.1")) }
        #expect(throttle.trackedKeys <= policy.maximumKeys)
    }
}
