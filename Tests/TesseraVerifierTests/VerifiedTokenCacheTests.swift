import Foundation
import TesseraJOSE
import TesseraTestSupport
import Testing

@testable import TesseraVerifier

/// A clock tests move.
final class MovableClock: @unchecked Sendable {
    private let lock = NSLock()
    private var seconds: Double
    init(_ seconds: Int64) { self.seconds = Double(seconds) }
    var clock: WallClock { WallClock { [self] in lock.withLock { Date(timeIntervalSince1970: seconds) } } }
    func set(_ value: Int64) { lock.withLock { seconds = Double(value) } }
}

/// Keys a test swaps, as a JWKS refresh would.
final class SwappableKeys: KeySource, @unchecked Sendable {
    private let lock = NSLock()
    private var keys: VerificationKeySet
    init(_ keys: VerificationKeySet) { self.keys = keys }
    func set(_ keys: VerificationKeySet) { lock.withLock { self.keys = keys } }
    func currentKeys() async throws -> VerificationKeySet { lock.withLock { keys } }
    func keysAfterUnknownKeyID() async -> VerificationKeySet? { nil }
}

@Suite("The verified-token cache (issue 19): safe because every rule of a full check still holds on a hit")
struct VerifiedTokenCacheTests {
    let factory = TokenFactory(key: try! SigningKey.generate(.es256))

    func verifier(_ keys: SwappableKeys, clock: MovableClock, size: Int = 16, leeway: TimeInterval = 0) throws -> AccessTokenVerifier {
        var configuration = factory.configuration(leeway: leeway)
        configuration.clock = clock.clock
        configuration.verifiedTokenCacheSize = size
        return try AccessTokenVerifier(configuration: configuration, keySource: keys)
    }

    @Test("A token presented again is served from the cache, with the same claims")
    func hit() async throws {
        let keys = SwappableKeys(try VerificationKeySet([try factory.key.verificationKey()]))
        let verifier = try verifier(keys, clock: MovableClock(factory.now))
        let token = try factory.token()
        let first = try await verifier.verify(token)
        let second = try await verifier.verify(token)
        #expect(first.claims == second.claims && first.subject == "alice")
        #expect(verifier.cache?.hits == 1 && verifier.cache?.count == 1)
    }

    @Test("exp and nbf are checked on every hit, with the leeway, exactly as the full check does")
    func timeOnEveryHit() async throws {
        let keys = SwappableKeys(try VerificationKeySet([try factory.key.verificationKey()]))
        let clock = MovableClock(factory.now)
        let verifier = try verifier(keys, clock: clock, leeway: 30)
        let token = try factory.token { $0["nbf"] = .number(JSONNumber(factory.now + 10)) }
        _ = try await verifier.verify(token)
        // exp is now + 600: at exp + leeway it is expired, cached or not; one second before, it is served.
        clock.set(factory.now + 629)
        _ = try await verifier.verify(token)
        clock.set(factory.now + 630)
        await #expect(throws: TokenVerificationError.self) { _ = try await verifier.verify(token) }
        // nbf is now + 10: a clock set back before nbf - leeway refuses it from the cache too.
        clock.set(factory.now - 21)
        await #expect(throws: TokenVerificationError.self) { _ = try await verifier.verify(token) }
        clock.set(factory.now - 20)
        _ = try await verifier.verify(token)
        #expect(verifier.cache?.hits == 2)
    }

    @Test("A key that leaves the key set takes its tokens out of the cache, and so does a kid reused for another key")
    func keyLeavesTheSet() async throws {
        let other = try SigningKey.generate(.es256)
        let keys = SwappableKeys(try VerificationKeySet([try factory.key.verificationKey(), try other.verificationKey()]))
        let verifier = try verifier(keys, clock: MovableClock(factory.now))
        let token = try factory.token()
        var otherFactory = TokenFactory(key: other)
        otherFactory.now = factory.now
        let otherToken = try otherFactory.token()
        _ = try await verifier.verify(token)
        _ = try await verifier.verify(otherToken)
        #expect(verifier.cache?.count == 2)
        // The first key is withdrawn: its token is refused; the other key's is still served from the cache.
        keys.set(try VerificationKeySet([try other.verificationKey()]))
        await #expect(throws: TokenVerificationError.self) { _ = try await verifier.verify(token) }
        _ = try await verifier.verify(otherToken)
        #expect(verifier.cache?.count == 1 && verifier.cache?.hits == 1)
        // Another key under the first key's kid: the cached token is not served (its key is gone), nor verifies.
        let impostor = try SigningKey.generate(.es256, keyID: factory.key.keyID!).verificationKey()
        keys.set(try VerificationKeySet([impostor]))
        _ = try? await verifier.verify(token)
        keys.set(try VerificationKeySet([impostor, try other.verificationKey()]))
        await #expect(throws: TokenVerificationError.self) { _ = try await verifier.verify(token) }
    }

    @Test("Keyed by the whole token: a token differing in its last byte, or only in its signature, is checked in full and refused")
    func wholeToken() async throws {
        let keys = SwappableKeys(try VerificationKeySet([try factory.key.verificationKey()]))
        let verifier = try verifier(keys, clock: MovableClock(factory.now))
        let token = try factory.token()
        _ = try await verifier.verify(token)
        let parts = token.split(separator: ".")
        var signature = try Base64URL.decode(String(parts[2]))
        signature[signature.count - 1] ^= 1
        let tampered = parts[0] + "." + parts[1] + "." + Base64URL.encode(signature)
        await #expect(throws: TokenVerificationError.self) { _ = try await verifier.verify(String(tampered)) }
        await #expect(throws: TokenVerificationError.self) { _ = try await verifier.verify(String(tampered)) }
        #expect(verifier.cache?.hits == 0 && verifier.cache?.count == 1, "a failure is never kept")
    }

    @Test("Bounded: never more than its capacity, the oldest evicted first; size 0 keeps nothing")
    func bounded() async throws {
        let keys = SwappableKeys(try VerificationKeySet([try factory.key.verificationKey()]))
        let verifier = try verifier(keys, clock: MovableClock(factory.now), size: 4)
        var tokens: [String] = []
        for index in 0..<6 { tokens.append(try factory.token { $0["jti"] = .string("jti-\(index)") }) }
        for token in tokens { _ = try await verifier.verify(token) }
        #expect(verifier.cache?.count == 4)
        _ = try await verifier.verify(tokens[5])
        _ = try await verifier.verify(tokens[0])
        #expect(verifier.cache?.hits == 1, "the newest is kept, the oldest was evicted")
        let uncached = try self.verifier(keys, clock: MovableClock(factory.now), size: 0)
        _ = try await uncached.verify(tokens[0])
        #expect(uncached.cache == nil)
    }
}
