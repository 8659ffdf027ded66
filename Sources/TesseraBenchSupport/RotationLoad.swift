import Foundation
public import TesseraIssuer

// What the refresh-token benchmarks share (`tessera-store-bench`, `tessera-pg-bench`): the clock they time
// with, the families they issue, and the rotation load they measure every store with.

/// Seconds on the monotonic clock.
public func monotonic() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// The benchmark's `index`th family: one user each, spread over eight clients.
public func newFamily(_ index: Int) -> NewRefreshTokenFamily {
    NewRefreshTokenFamily(clientID: "client-\(index % 8)", subject: "user-\(index)", scope: ["openid", "profile", "read"], authTime: Date())
}

/// Rotations per second, `callers` tasks each rotating its own family (client-0's) for `seconds`.
public func rotations(in store: any RefreshTokenStore, callers: Int, seconds: Double) async throws -> Double {
    var tokens: [RefreshToken] = []
    for index in 0..<callers { tokens.append(try await store.issue(newFamily(index * 8)).token) }
    let deadline = monotonic() + seconds
    let start = monotonic()
    let total = try await withThrowingTaskGroup(of: Int.self) { group in
        for token in tokens {
            group.addTask {
                var current = token
                var count = 0
                while monotonic() < deadline {
                    current = try await store.rotate(current, clientID: "client-0", scope: nil).successor.token
                    count += 1
                }
                return count
            }
        }
        return try await group.reduce(0, +)
    }
    return Double(total) / (monotonic() - start)
}
