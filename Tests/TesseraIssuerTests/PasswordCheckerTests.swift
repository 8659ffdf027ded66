import Foundation
import TesseraJOSE
import TesseraTestSupport
import Testing

@testable import TesseraIssuer

/// Issue 18, items 7 and 17: password checks run on a bounded pool of their own, at one cost for every user.
@Suite("Password checks: bounded, equal cost, imported hashes upgraded")
struct PasswordCheckerTests {
    /// A Django `pbkdf2_sha256` hash of `password`.
    static func django(_ password: String, iterations: Int) throws -> String {
        let salt = "saltsalt\(iterations)"
        let hash = try PasswordHashing.pbkdf2SHA256(password: Array(password.utf8), salt: Array(salt.utf8), iterations: iterations, length: 32)
        return "pbkdf2_sha256$\(iterations)$\(salt)$\(Data(hash).base64EncodedString())"
    }

    @Test("Item 17: an unknown user, a scrypt user and imported PBKDF2 users of different iteration counts cost the same work, right or wrong")
    func equalWork() throws {
        let users = [
            User(username: "scrypt", password: try UserStore.hash("correct horse"), created: Date(), subject: UUID().uuidString),
            User(
                username: "django-100k", password: try Self.django("correct horse", iterations: 100_000), created: Date(), subject: UUID().uuidString),
            User(
                username: "django-150k", password: try Self.django("correct horse", iterations: 150_000), created: Date(), subject: UUID().uuidString),
        ]
        let ceiling = 150_000
        var works: [PasswordChecker.Work] = []
        for user in users + [nil] as [User?] {
            for password in ["correct horse", "wrong"] {
                var work = PasswordChecker.Work()
                let ok = PasswordChecker.verify(password, for: user, pbkdf2Ceiling: ceiling, work: &work)
                #expect(ok == (user != nil && password == "correct horse"), "\(user?.username ?? "unknown") \(password)")
                works.append(work)
            }
        }
        #expect(Set(works.map { "\($0.scrypt)/\($0.pbkdf2Iterations)" }).count == 1, "\(works)")
        #expect(works[0] == PasswordChecker.Work(scrypt: (1 << 15) * 8, pbkdf2Iterations: 150_000))
        // With no imported user left, a check is one scrypt only.
        var plain = PasswordChecker.Work()
        _ = PasswordChecker.verify("x", for: nil, pbkdf2Ceiling: 0, work: &plain)
        #expect(plain == PasswordChecker.Work(scrypt: (1 << 15) * 8, pbkdf2Iterations: 0))
    }

    @Test("Item 17: an imported user is rehashed to the current scrypt at their first successful sign-in, and still signs in")
    func rehash() async throws {
        let folder = try TemporaryDirectory("tessera-rehash")
        defer { folder.remove() }
        let store = UserStore(dataPath: folder.appending("data"))
        try store.add("carol", passwordHash: try Self.django("correct horse", iterations: 100_000), now: Date())
        let passwords = PasswordSignIn(store: store, checker: PasswordChecker(threads: 1, queueLimit: 4))
        #expect(try await passwords.authenticate("carol", "wrong") == nil)
        #expect(try store.users()[0].password.hasPrefix("pbkdf2_sha256$"))  // a failure changes nothing
        #expect(try await passwords.authenticate("carol", "correct horse")?.username == "carol")
        for _ in 0..<100 where try store.users()[0].password.hasPrefix("pbkdf2") { try await Task.sleep(for: .milliseconds(50)) }
        #expect(try store.users()[0].password.hasPrefix("scrypt$15$8$1$"))
        #expect(try await passwords.authenticate("carol", "correct horse")?.username == "carol")
    }

    @Test("Item 7: at most `threads` checks run at once, on the checker's own threads; beyond the queue a check is refused at once with Busy")
    func bounded() async throws {
        let checker = PasswordChecker(threads: 2, queueLimit: 3)
        let running = Counter()
        let results = await withTaskGroup(of: Result<String, any Error>.self) { group in
            for _ in 0..<12 {
                group.addTask {
                    do {
                        return .success(
                            try await checker.run {
                                running.enter()
                                defer { running.leave() }
                                usleep(100_000)
                                return PasswordChecker.currentThreadName()
                            })
                    } catch { return .failure(error) }
                }
            }
            var all: [Result<String, any Error>] = []
            for await result in group { all.append(result) }
            return all
        }
        let names = results.compactMap { try? $0.get() }
        #expect(running.peak <= 2)
        #expect(!names.isEmpty && names.allSatisfy { $0 == "tessera-pwcheck" }, "\(names)")
        #expect(results.count - names.count >= 12 - 2 - 3 - 2)  // refused: those beyond two running and the queue
        #expect(results.allSatisfy { result in if case .failure(let error) = result { error is PasswordChecker.Busy } else { true } })
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var current = 0
    private(set) var peak = 0
    func enter() {
        lock.withLock {
            current += 1
            peak = max(peak, current)
        }
    }
    func leave() { lock.withLock { current -= 1 } }
}
