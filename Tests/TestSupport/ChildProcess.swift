public import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process of the test process, started with posix_spawn and reaped with its own waitpid.
///
/// Not Foundation's `Process`: swift-corelibs-foundation watches every child through one shared thread
/// and a socket per child that is not close-on-exec, so a long-lived child (a server, the browser) can
/// inherit another child's socket. Seen in CI: that thread blocked in wait4 on a server that was still
/// running, no other child was reaped, and the suite hung. Here every pipe is close-on-exec before any
/// other spawn can run (one lock around pipe creation and spawning), the child gets only its standard
/// streams, its signal mask is cleared and its signal dispositions reset (so SIGTERM works on it), and
/// each caller waits for its own pid.
public final class ChildProcess: @unchecked Sendable {
    /// Where the child's standard output and error go.
    public enum Output: Sendable {
        /// Two pipes the parent reads (`stdout`, `stderr`).
        case pipes
        /// Both appended to this file.
        case file(String)
        /// Discarded.
        case null
    }

    public let pid: pid_t
    /// The parent's ends (-1 where not used): write the child's input, read its output and errors.
    public let stdin: Int32
    public let stdout: Int32
    public let stderr: Int32
    private let lock = NSLock()
    private var exitStatus: Int32?

    /// Serialises pipe creation with spawning, so no child inherits another's pipe before close-on-exec.
    private static let spawnLock = NSLock()

    /// For code that spawns on its own (the browser driver): runs `body` holding the same lock.
    public static func whileNoOneSpawns<T>(_ body: () throws -> T) rethrows -> T {
        try spawnLock.withLock(body)
    }
    /// Writing to a child that has gone must be an error, not SIGPIPE for the whole test process.
    private static let ignoreBrokenPipes: Void = { signal(SIGPIPE, SIG_IGN) }()

    public init(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, input: Bool = false,
        output: Output = .null
    ) throws {
        Self.ignoreBrokenPipes
        let (pid, fds) = try Self.spawnLock.withLock { () throws -> (pid_t, [Int32]) in
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            var parentEnds: [Int32] = [-1, -1, -1]
            var childEnds: [Int32] = []
            func pipePair() throws -> (read: Int32, write: Int32) {
                var ends: [Int32] = [0, 0]
                guard pipe(&ends) == 0 else { throw TestSupportError("pipe failed: \(String(cString: strerror(errno)))") }
                for fd in ends { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
                return (ends[0], ends[1])
            }
            if input {
                let ends = try pipePair()
                parentEnds[0] = ends.write
                childEnds.append(ends.read)
                posix_spawn_file_actions_adddup2(&actions, ends.read, 0)
            } else {
                posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            }
            switch output {
            case .pipes:
                for stream: Int32 in [1, 2] {
                    let ends = try pipePair()
                    parentEnds[Int(stream)] = ends.read
                    childEnds.append(ends.write)
                    posix_spawn_file_actions_adddup2(&actions, ends.write, stream)
                }
            case .file(let path):
                posix_spawn_file_actions_addopen(&actions, 1, path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
                posix_spawn_file_actions_adddup2(&actions, 1, 2)
            case .null:
                posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
                posix_spawn_file_actions_adddup2(&actions, 1, 2)
            }
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            var noSignals = sigset_t()
            sigemptyset(&noSignals)
            posix_spawnattr_setsigmask(&attributes, &noSignals)
            var defaults = sigset_t()
            sigemptyset(&defaults)
            for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD] { sigaddset(&defaults, signal) }
            posix_spawnattr_setsigdefault(&attributes, &defaults)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

            var argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
            defer { for argument in argv { free(argument) } }
            var envp: [UnsafeMutablePointer<CChar>?] =
                (environment ?? ProcessInfo.processInfo.environment)
                .map { strdup("\($0.key)=\($0.value)") } + [nil]
            defer { for entry in envp { free(entry) } }
            var child: pid_t = 0
            let status = posix_spawn(&child, executable, &actions, &attributes, &argv, &envp)
            for fd in childEnds { close(fd) }
            guard status == 0 else {
                for fd in parentEnds where fd >= 0 { close(fd) }
                throw TestSupportError("posix_spawn \(executable) failed: \(String(cString: strerror(status)))")
            }
            return (child, parentEnds)
        }
        self.pid = pid
        (stdin, stdout, stderr) = (fds[0], fds[1], fds[2])
    }

    /// Waits for the child to end (blocking: call it off Swift concurrency's threads, see `onOwnThread`,
    /// or right after SIGKILL) and returns its exit status, or 128 + the signal that ended it.
    @discardableResult
    public func wait() -> Int32 {
        if let status = lock.withLock({ exitStatus }) { return status }
        var raw: Int32 = 0
        var result: pid_t
        repeat { result = waitpid(pid, &raw, 0) } while result < 0 && errno == EINTR
        return record(raw, reaped: result == pid)
    }

    /// Whether the child still runs (reaps it if it has ended).
    public var isRunning: Bool {
        if lock.withLock({ exitStatus }) != nil { return false }
        var raw: Int32 = 0
        let result = waitpid(pid, &raw, WNOHANG)
        if result == 0 { return true }
        record(raw, reaped: result == pid)
        return false
    }

    public func kill(_ signal: Int32 = SIGKILL) {
        guard isRunning else { return }
        _ = Glibc.kill(pid, signal)
    }

    /// Closes the parent's end of the child's standard input (end of input for the child).
    public func closeInput() {
        if stdin >= 0 { close(stdin) }
    }

    @discardableResult
    private func record(_ raw: Int32, reaped: Bool) -> Int32 {
        let status = !reaped ? -1 : raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
        lock.withLock { exitStatus = exitStatus ?? status }
        return lock.withLock { exitStatus! }
    }

    deinit {
        for fd in [stdout, stderr] where fd >= 0 { close(fd) }
    }
}

/// Reads `fd` to its end (blocking).
public func readToEnd(_ fd: Int32) -> Data {
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = read(fd, &buffer, buffer.count)
        if count < 0, errno == EINTR { continue }
        if count <= 0 { break }
        data.append(contentsOf: buffer[0..<count])
    }
    return data
}

/// Writes all of `data` to `fd` (blocking), ignoring a reader that went away.
public func writeFully(_ fd: Int32, _ data: Data) {
    data.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let count = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if count < 0, errno == EINTR { continue }
            if count <= 0 { return }
            offset += count
        }
    }
}

/// A shared object, compiled with the toolchain's clang, that injects faults chosen by the environment:
/// `TESSERA_FAIL_FDATASYNC_AT=N` makes the N-th fdatasync(2) fail with EIO; `TESSERA_FAIL_WRITE_AFTER=N`
/// with `TESSERA_FAIL_WRITE_MIN=B` lets all but the last byte of the first write(2) of at least B bytes
/// after the N-th such write through, and fails every later write to that descriptor with ENOSPC (a
/// disk that fills in the middle of a write). Writes to standard streams and small ones (the runtime's
/// wake-ups) pass untouched.
public func buildFaultShim(in folder: TemporaryDirectory) async throws -> String {
    let source = folder.appending("fault_shim.c")
    let library = folder.appending("fault_shim.so")
    try """
    #define _GNU_SOURCE
    #include <dlfcn.h>
    #include <errno.h>
    #include <stdlib.h>
    #include <unistd.h>
    static int calls, bigWrites, fullFD = -1;
    int fdatasync(int fd) {
        static int (*real)(int);
        if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
        const char *at = getenv("TESSERA_FAIL_FDATASYNC_AT");
        if (at && __sync_add_and_fetch(&calls, 1) == atoi(at)) { errno = EIO; return -1; }
        return real(fd);
    }
    ssize_t write(int fd, const void *buffer, size_t count) {
        static ssize_t (*real)(int, const void *, size_t);
        if (!real) real = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
        const char *after = getenv("TESSERA_FAIL_WRITE_AFTER");
        const char *minimum = getenv("TESSERA_FAIL_WRITE_MIN");
        if (after && minimum && fd > 2) {
            if (fd == __atomic_load_n(&fullFD, __ATOMIC_SEQ_CST)) { errno = ENOSPC; return -1; }
            if (count >= (size_t)atoi(minimum) && __sync_add_and_fetch(&bigWrites, 1) == atoi(after) + 1) {
                __atomic_store_n(&fullFD, fd, __ATOMIC_SEQ_CST);
                return real(fd, buffer, count - 1);
            }
        }
        return real(fd, buffer, count);
    }
    """.write(toFile: source, atomically: false, encoding: .utf8)
    let compiler = try await runChild("/usr/bin/env", ["clang", "-shared", "-fPIC", "-o", library, source, "-ldl"])
    guard compiler.status == 0 else { throw TestSupportError("clang could not build the fsync shim: \(compiler.err)") }
    return library
}

/// A plain TCP connection to `port` on 127.0.0.1, for tests that write raw bytes; the caller closes it.
/// `receiveTimeout` (seconds) bounds each `recv`.
public func connectLoopback(port: Int, receiveTimeout: Int? = nil) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestSupportError("cannot make a socket") }
    if let receiveTimeout {
        var timeout = timeval(tv_sec: receiveTimeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }
    var address = loopbackAddress(port: port)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(fd)
        throw TestSupportError("cannot connect to 127.0.0.1:\(port)")
    }
    return fd
}

/// A loopback port that was free a moment ago (bound by the kernel's choice, then closed).
public func unusedLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = loopbackAddress(port: 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard fd >= 0, bound else { throw TestSupportError("cannot bind a loopback port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

func loopbackAddress(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return address
}

/// One HTTP/1.1 request to a loopback port on a thread of its own, on a connection of its own that the
/// server closes after answering: no client library between the test and the server, and every wait
/// bounded by `timeout` seconds (a server killed mid-request is an error, never a stall). The body is read
/// to the end of the connection; a chunked one is decoded.
public func loopbackHTTP(
    port: Int, method: String = "GET", path: String, headers: [(String, String)] = [], body: String = "", timeout: Int = 30
) async throws -> (status: Int, body: String, headers: [String: String]) {
    try await onOwnThread {
        let fd = try connectLoopback(port: port, receiveTimeout: timeout)
        defer { close(fd) }
        var sendTimeout = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &sendTimeout, socklen_t(MemoryLayout<timeval>.size))
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if method != "GET" { head += "Content-Length: \(body.utf8.count)\r\n" }
        let request = Array((head + "\r\n" + body).utf8)
        var sent = 0
        while sent < request.count {
            let count = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw TestSupportError("sending to 127.0.0.1:\(port) failed: \(String(cString: strerror(errno)))") }
            sent += count
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count == 0 { break }
            guard count > 0 else { throw TestSupportError("no answer from 127.0.0.1:\(port): \(String(cString: strerror(errno)))") }
            response += buffer[0..<count]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n"), let status = Int(text.split(separator: " ", maxSplits: 2).dropFirst().first ?? "") else {
            throw TestSupportError("not an HTTP answer from 127.0.0.1:\(port): \(text.prefix(200))")
        }
        let header = text[..<split.lowerBound].lowercased()
        var headers: [String: String] = [:]
        for line in text[..<split.lowerBound].split(separator: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
        }
        var payload = String(text[split.upperBound...])
        if header.contains("transfer-encoding: chunked") {
            var decoded = ""
            var rest = Substring(payload)
            while let line = rest.range(of: "\r\n"), let size = Int(rest[..<line.lowerBound], radix: 16), size > 0 {
                let start = line.upperBound
                let end = rest.utf8.index(start, offsetBy: size)
                decoded += rest[start..<end]
                rest = rest[end...].dropFirst(2)
            }
            payload = decoded
        }
        return (status, payload, headers)
    }
}
