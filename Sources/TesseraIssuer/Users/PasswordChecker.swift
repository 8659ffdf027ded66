public import Foundation
import TesseraJOSE

#if canImport(Glibc)
import Glibc
#endif

/// Where password checks run: a few threads of their own with a bounded queue, so a flood of sign-ins
/// (each an scrypt of 32 MiB and tens of milliseconds) cannot take the threads that serve every other
/// request (issue 18, item 7). Beyond the queue, a check is refused at once with `Busy`: the endpoint answers
/// 503 `temporarily_unavailable`, the sign-in page 503, and both ask to retry.
///
/// Every check costs the same whoever the user is (issue 18, item 17): one scrypt at the current parameters
/// and, while any imported PBKDF2 hash remains, PBKDF2 at the highest iteration count among them — the
/// user's own hash computed for real and the rest as dummies, an unknown user's all dummies. A user whose
/// hash is not the current scrypt is rehashed at their next successful check, so the imported population
/// (and the extra cost) goes away as users sign in.
public final class PasswordChecker: @unchecked Sendable {
    /// The check could not be queued: too many are waiting.
    public struct Busy: Error, Sendable {}

    /// The checker `tessera serve` uses: half the cores (at least one), and 32 checks waiting beyond one per thread.
    public static let shared = PasswordChecker()

    public let threads: Int
    public let queueLimit: Int
    private let condition = NSCondition()
    private var queue: [() -> Void] = []
    private var started = 0

    public init(threads: Int = max(1, ProcessInfo.processInfo.activeProcessorCount / 2), queueLimit: Int = 32) {
        self.threads = max(1, threads)
        self.queueLimit = max(0, queueLimit)
    }

    /// Whether `password` is `user`'s (false for an unknown user), at the same cost for every user of `users`.
    public func check(_ password: String, for user: User?, among users: [User]) async throws -> Bool {
        let ceiling = Self.pbkdf2Ceiling(of: users)
        return try await run { Self.verify(password, for: user, pbkdf2Ceiling: ceiling) }
    }

    /// The highest PBKDF2 iteration count among `users` (0 when none was imported): what every check pays.
    static func pbkdf2Ceiling(of users: [User]) -> Int {
        users.compactMap { PasswordHash($0.password)?.pbkdf2Iterations }.max() ?? 0
    }

    /// Runs `work` on one of the checker's threads; throws `Busy` at once when the queue is full.
    public func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            condition.lock()
            guard queue.count < queueLimit + threads else {
                condition.unlock()
                continuation.resume(throwing: Busy())
                return
            }
            queue.append { continuation.resume(returning: work()) }
            if started < threads {
                started += 1
                Thread.detachNewThread { [self] in serve() }
            }
            condition.signal()
            condition.unlock()
        }
    }

    private func serve() {
        // Named from inside, through pthread itself: on Linux a thread takes its creator's name (here a
        // concurrency pool thread's), and Foundation's `Thread.name` setter can race with `start` and leave
        // the kernel's name unchanged. This name is what `top -H` and the tests see.
        Self.nameCurrentThread("tessera-pwcheck")  // at most 15 bytes (pthread)
        while true {
            condition.lock()
            while queue.isEmpty { condition.wait() }
            let job = queue.removeFirst()
            condition.unlock()
            job()
        }
    }

    /// Names the calling thread. On Linux through the kernel's own file for it (Glibc does not export
    /// `pthread_setname_np` to Swift), then for Foundation.
    static func nameCurrentThread(_ name: String) {
        #if os(Linux)
        let file = open("/proc/thread-self/comm", O_WRONLY)
        if file >= 0 {
            _ = Array(name.utf8.prefix(15)).withUnsafeBytes { write(file, $0.baseAddress, $0.count) }
            close(file)
        }
        #endif
        Thread.current.name = name
    }

    /// The kernel's name of the calling thread (Foundation's elsewhere).
    static func currentThreadName() -> String {
        #if os(Linux)
        guard let name = try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8) else { return "" }
        return name.hasSuffix("\n") ? String(name.dropLast()) : name
        #else
        return Thread.current.name ?? ""
        #endif
    }

    /// What a check computed: scrypt work (N·r·p, summed) and PBKDF2 iterations. Equal for every user.
    struct Work: Equatable {
        var scrypt = 0
        var pbkdf2Iterations = 0

        mutating func add(_ hash: PasswordHash) {
            switch hash.function {
            case .scrypt(let logN, let r, let p): scrypt += (1 << logN) * r * p
            case .pbkdf2SHA256(let iterations): pbkdf2Iterations += iterations
            }
        }
    }

    /// The equal-cost check: see the type's notes.
    static func verify(_ password: String, for user: User?, pbkdf2Ceiling: Int) -> Bool {
        var work = Work()
        return verify(password, for: user, pbkdf2Ceiling: pbkdf2Ceiling, work: &work)
    }

    static func verify(_ password: String, for user: User?, pbkdf2Ceiling: Int, work: inout Work) -> Bool {
        let bytes = Array(password.utf8)
        let own = user.flatMap { PasswordHash($0.password) }
        var matches = false
        if let own, let computed = try? own.derive(bytes) {
            work.add(own)
            matches = ConstantTime.equals(computed, own.expected)
        }
        // The rest of the work every check does, as dummies: one current scrypt, PBKDF2 up to the ceiling.
        if own?.isCurrentScrypt != true, (try? UserStore.dummy.derive(bytes)) != nil { work.add(UserStore.dummy) }
        let ownIterations = own?.pbkdf2Iterations ?? 0
        if pbkdf2Ceiling > ownIterations {
            let dummy = PasswordHash(
                function: .pbkdf2SHA256(iterations: pbkdf2Ceiling - ownIterations), salt: Array("tessera".utf8),
                expected: [UInt8](repeating: 0, count: 32))
            if (try? dummy.derive(bytes)) != nil { work.add(dummy) }
        }
        return matches && user != nil
    }
}

extension PasswordHash {
    var pbkdf2Iterations: Int? {
        if case .pbkdf2SHA256(let iterations) = function { return iterations }
        return nil
    }

    /// scrypt at the parameters `users add` uses today.
    var isCurrentScrypt: Bool {
        if case .scrypt(let logN, let r, let p) = function { return (logN, r, p) == (UserStore.logN, UserStore.r, UserStore.p) }
        return false
    }
}

extension UserStore {
    /// The dummy scrypt hash every check of an unknown or imported user also computes.
    static let dummy = PasswordHash(dummyHash)!

    /// Whether a user's stored hash should be replaced by the current scrypt at their next sign-in.
    public static func needsRehash(_ user: User) -> Bool { PasswordHash(user.password)?.isCurrentScrypt != true }

    /// The current scrypt of `password`, for `replaceHash` (run it on the checker's threads: it is the
    /// expensive part).
    public static func currentHash(of password: String) throws -> String { try hash(password) }

    /// Replaces `username`'s hash by `new`, if the stored hash is still `old` (a password changed
    /// meanwhile wins). Called after a successful check, with the current scrypt of the user's password.
    public func replaceHash(_ username: String, with new: String, replacing old: String) throws {
        try document.update { registry in
            guard let index = registry.users.firstIndex(where: { $0.username.sameBytes(as: username) }), registry.users[index].password == old
            else { return }
            registry.users[index].password = new
        }
    }
}

/// Who may sign in with a password, and where their passwords are checked: what the password grant and the
/// sign-in page share.
public struct PasswordSignIn: Sendable {
    public let users: @Sendable () throws -> [User]
    public let checker: PasswordChecker
    /// Where a user's hash is replaced by the current scrypt after a successful check (nil: never).
    public let store: (any UserRegistryStore)?

    public init(users: @escaping @Sendable () throws -> [User], checker: PasswordChecker = .shared, store: (any UserRegistryStore)? = nil) {
        self.users = users
        self.checker = checker
        self.store = store
    }

    /// The users of `store`, rehashed there when needed.
    public init(store: UserStore, checker: PasswordChecker = .shared) {
        self.init(users: { try store.users() }, checker: checker, store: store)
    }

    /// The user `username` names (byte for byte) when `password` is theirs; nil for a wrong password or an
    /// unknown user, after the same work. Throws `PasswordChecker.Busy` when too many checks are waiting.
    public func authenticate(_ username: String, _ password: String) async throws -> User? {
        guard password.utf8.count <= 1_024 else { return nil }
        let all = try users()
        let user = all.named(username)
        guard try await checker.check(password, for: user, among: all), let user else { return nil }
        if let store, UserStore.needsRehash(user) {
            // Off the request: the user is signed in either way; a failed rehash is tried again next time.
            let checker = checker
            Task.detached {
                guard let new = try? await checker.run({ try? UserStore.currentHash(of: password) }) ?? nil else { return }
                try? await store.replaceHash(user.username, with: new, replacing: user.password)
            }
        }
        return user
    }
}
