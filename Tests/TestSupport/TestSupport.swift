public import Foundation
public import TesseraJOSE
public import Testing

/// Test helpers shared by the test targets (not a product).

/// The shared reference vectors: `../shared/vectors/` beside the repository, or `$TESSERA_VECTORS`.
/// A missing file fails the test: these vectors are required, never optional.
public enum Vectors {
    public static let directory: URL = {
        if let override = ProcessInfo.processInfo.environment["TESSERA_VECTORS"] { return URL(fileURLWithPath: override) }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/vectors")
    }()

    public static func json(_ path: String) throws -> [String: Any] {
        let data = try Data(contentsOf: directory.appendingPathComponent(path))
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TestSupportError("\(path) is not a JSON object")
        }
        return object
    }

    /// A Foundation JSON value as compact UTF-8 bytes (to be read by Tessera's own parser).
    public static func data(_ object: Any) throws -> [UInt8] { [UInt8](try JSONSerialization.data(withJSONObject: object)) }
}

public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension Array where Element == UInt8 {
    /// Bytes from hexadecimal text.
    public init(hex: String) throws {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(hex.utf8.count / 2)
        var index = hex.startIndex
        while index < hex.endIndex {
            guard let next = hex.index(index, offsetBy: 2, limitedBy: hex.endIndex),
                let byte = UInt8(hex[index..<next], radix: 16)
            else { throw TestSupportError("bad hex") }
            bytes.append(byte)
            index = next
        }
        self = bytes
    }
}

/// Changes the character at `index` of a token to another base64url character (or flips a bit of a
/// non-alphabet character), so the change reaches the signature check rather than the decoder.
public func tamper(_ token: String, at index: Int) -> String {
    var bytes = Array(token.utf8)
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    if let position = alphabet.firstIndex(of: bytes[index]) {
        bytes[index] = alphabet[(position + 1) % 64]
    } else {
        bytes[index] ^= 1
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// A wall clock tests move by hand (forward, or back to emulate a clock step), never by sleeping.
public final class SteppedClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date

    public init(_ start: Date = Date(timeIntervalSince1970: 1_800_000_000)) { current = start }

    public var now: Date { lock.withLock { current } }
    public func advance(_ seconds: TimeInterval) { lock.withLock { current += seconds } }
    public var wallClock: WallClock { WallClock { [self] in now } }
}

/// Monotonic seconds a test steps by hand (for throttles and other code that takes `() -> Double`).
public final class Seconds: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Double = 1_000
    public init() {}
    public var now: Double { lock.withLock { value } }
    public func advance(_ delta: Double) { lock.withLock { value += delta } }
}

/// A fresh folder under the system's temporary directory, removed by `remove()`.
public struct TemporaryDirectory: Sendable {
    public let url: URL
    public var path: String { url.path }

    public init(_ label: String = "tessera") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    public func appending(_ name: String) -> String { url.appendingPathComponent(name).path }
    public func remove() { try? FileManager.default.removeItem(at: url) }
}

/// The path of an executable built beside the running test binary.
public func builtExecutable(_ name: String) -> String {
    let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent(name).path
}

/// Runs blocking work (waiting for a child process, pausing before a kill) on a thread of its own.
///
/// Swift concurrency shares as many threads as the machine has cores among every test in the process
/// and every loopback server those tests run. A test that blocks one of them for seconds starves the
/// rest: on a 2-core CI machine, two such tests stall every server's handlers, and a JWKS fetch or a
/// child process waiting on them times out. Keep assertions out of `body` (they belong to the test's task).
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// Runs `executable` to its end on a thread of its own (see `onOwnThread`): its exit status and what it
/// wrote to standard output and standard error (both read at once, so neither pipe can fill and stall it).
public func runChild(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
    stdin: Data? = nil
) async throws -> (status: Int32, out: String, err: String) {
    try await onOwnThread {
        let child = try ChildProcess(executable, arguments, environment: environment, input: true, output: .pipes)
        let errorText = ReadBuffer()
        let errorDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            errorText.data = readToEnd(child.stderr)
            errorDone.signal()
        }
        if let stdin { writeFully(child.stdin, stdin) }
        child.closeInput()
        let out = readToEnd(child.stdout)
        errorDone.wait()
        let status = child.wait()
        return (status, String(decoding: out, as: UTF8.self), String(decoding: errorText.data, as: UTF8.self))
    }
}

/// Runs the built `tessera` with `arguments`, extra environment and optional standard input.
public func runTessera(
    _ arguments: [String], environment: [String: String] = [:], stdin: String? = nil
) async throws -> (status: Int32, out: String, err: String) {
    try await runChild(
        builtExecutable("tessera"), arguments, environment: ProcessInfo.processInfo.environment.merging(environment) { $1 },
        stdin: stdin.map { Data($0.utf8) })
}

/// Bytes one thread reads and another takes after a semaphore says the reading is done.
private final class ReadBuffer: @unchecked Sendable {
    var data = Data()
}

/// Threads of their own for the loopback servers a test runs inside the test process.
///
/// Swift concurrency's shared threads (as many as cores) also run every other test, and a test doing
/// seconds of CPU work (Wycheproof sweeps, RSA key generation, scrypt) holds one without yielding. A server
/// whose handlers queue behind such tests can miss a deadline the code under test rightly enforces (the
/// verifier's 5 s JWKS fetch). Servers started inside `onServerThreads` run their request handling here.
public final class ServerThreads: TaskExecutor, @unchecked Sendable {
    public static let shared = ServerThreads(count: 4)
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []

    private init(count: Int) {
        for _ in 0..<count { Thread.detachNewThread { [self] in work() } }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.withLock {
            jobs.append(job)
            condition.signal()
        }
    }

    private func work() {
        while true {
            let job = condition.withLock { () -> UnownedJob in
                while jobs.isEmpty { condition.wait() }
                return jobs.removeFirst()
            }
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}

/// Runs `body` (which starts a loopback server) preferring `ServerThreads` for it and every child task.
public func onServerThreads<T: Sendable>(_ body: () async throws -> T) async rethrows -> T {
    try await withTaskExecutorPreference(ServerThreads.shared, operation: body)
}

/// Expects `body` to throw an `E` with exactly `code` (a different code, another error type, or nothing
/// thrown is a failure at the caller's line); returns the error for further checks.
@discardableResult
public func expectError<E: CodedError, T>(
    _ code: ErrorCode<E>, _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> T
) -> E? where E.Domain == E {
    do {
        _ = try body()
    } catch {
        return check(error, code, comment, sourceLocation)
    }
    Issue.record("expected \(code), nothing was thrown. \(comment.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
    return nil
}

/// `expectError` for asynchronous work.
@discardableResult
public func expectError<E: CodedError, T>(
    _ code: ErrorCode<E>, _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> T
) async -> E? where E.Domain == E {
    do {
        _ = try await body()
    } catch {
        return check(error, code, comment, sourceLocation)
    }
    Issue.record("expected \(code), nothing was thrown. \(comment.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
    return nil
}

private func check<E: CodedError>(_ error: any Error, _ code: ErrorCode<E>, _ comment: Comment?, _ sourceLocation: SourceLocation) -> E?
where E.Domain == E {
    guard let typed = error as? E else {
        Issue.record("expected \(code), got \(type(of: error)): \(error). \(comment.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
        return nil
    }
    #expect(typed.code == code, "expected \(code), got \(typed). \(comment.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
    return typed
}

/// The permission bits of a file or folder (`0o600`, `0o700`, …).
public func fileMode(_ path: String) throws -> Int {
    (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int ?? -1) & 0o777
}

/// Runs `executable` under strace (following children), tracing `calls` (strace's `trace=` list), under
/// umask 022 as a new user's shell has it; returns the exit status, standard error and the trace's lines.
/// `showPaths` adds strace's `-y` (descriptors printed with their paths).
public func traceSystemCalls(
    _ calls: String, of executable: String, _ arguments: [String], in folder: TemporaryDirectory,
    showPaths: Bool = false
) async throws -> (status: Int32, err: String, lines: [String]) {
    let trace = folder.appending("strace-\(UUID().uuidString).txt")
    let flags = showPaths ? "-f -y" : "-f"
    let run = try await runChild(
        "/bin/sh",
        ["-c", "umask 022; trace=\"$1\"; shift; exec strace \(flags) -o \"$trace\" -e trace=\(calls) \"$@\"", "sh", trace, executable] + arguments)
    let lines = (try? String(contentsOfFile: trace, encoding: .utf8))?.split(separator: "\n").map(String.init) ?? []
    return (run.status, run.err, lines)
}

extension TemporaryDirectory {
    /// A fresh folder (see `init(_:)`) and the path of `name` inside it, which does not exist yet.
    public static func holding(_ name: String, label: String) throws -> (folder: TemporaryDirectory, path: String) {
        let folder = try TemporaryDirectory(label)
        return (folder, folder.appending(name))
    }
}
