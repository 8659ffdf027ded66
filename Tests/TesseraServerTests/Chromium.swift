import Foundation
import TesseraTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Headless Chromium (Debian's `chromium` package) driven over the DevTools protocol on a pipe
/// (`--remote-debugging-pipe`: commands on fd 3, answers and events on fd 4, each JSON text ended by a NUL).
/// No WebSocket, no Node, no Python: the test talks to the browser directly. Every wait for the browser
/// (`poll` on its pipe, `waitpid`) runs on a thread of its own, not on Swift concurrency's few threads.
/// One test drives one instance, one call at a time.
final class Chromium: @unchecked Sendable {
    /// The browser to run: `$CHROMIUM`, or `chromium` / `chromium-browser` on the PATH.
    static var executable: String? {
        if let path = ProcessInfo.processInfo.environment["CHROMIUM"], FileManager.default.isExecutableFile(atPath: path) { return path }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for folder in path.split(separator: ":") {
            for name in ["chromium", "chromium-browser"] where FileManager.default.isExecutableFile(atPath: "\(folder)/\(name)") {
                return "\(folder)/\(name)"
            }
        }
        return nil
    }

    /// A missing browser fails the browser test, locally as in CI: a suite that says "passed" has run it.
    /// Whoever cannot install Chromium opts out in so many words with TESSERA_SKIP_BROWSER=1.
    static var skipped: Bool { ProcessInfo.processInfo.environment["TESSERA_SKIP_BROWSER"] == "1" }

    private let pid: pid_t
    private let commands: Int32
    private let answers: Int32
    private let profile: TemporaryDirectory
    private var buffer: [UInt8] = []
    private var events: [[String: Any]] = []
    private var nextID = 0
    /// The page session every command but the target ones goes to.
    private var session: String?
    private var closed = false
    private var reaped = false

    init(log: String) throws {
        guard let executable = Self.executable else {
            throw TestSupportError(
                "no chromium on the PATH: install it (Debian: apt-get install chromium fonts-dejavu-core), or set TESSERA_SKIP_BROWSER=1 to skip this test"
            )
        }
        let profile = try TemporaryDirectory("tessera-chromium")
        self.profile = profile
        let (child, commandsEnd, answersEnd) = try ChildProcess.whileNoOneSpawns { () throws -> (pid_t, Int32, Int32) in
            var toBrowser: [Int32] = [0, 0]
            var fromBrowser: [Int32] = [0, 0]
            // pipe2(O_CLOEXEC) is not visible from Swift: set close-on-exec right after (the children get
            // these ends only through the dup2 below).
            guard pipe(&toBrowser) == 0, pipe(&fromBrowser) == 0 else { throw TestSupportError("pipe failed") }
            for fd in toBrowser + fromBrowser { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_adddup2(&actions, toBrowser[0], 3)
            posix_spawn_file_actions_adddup2(&actions, fromBrowser[1], 4)
            posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
            let arguments = [
                executable, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                "--disable-sync", "--hide-scrollbars", "--mute-audio", "--user-data-dir=\(profile.path)", "about:blank",
            ]
            var argv = arguments.map { strdup($0) } + [nil]
            defer { for argument in argv { free(argument) } }
            var child: pid_t = 0
            let status = posix_spawn(&child, executable, &actions, nil, &argv, environ)
            Glibc.close(toBrowser[0])
            Glibc.close(fromBrowser[1])
            guard status == 0 else { throw TestSupportError("posix_spawn \(executable) failed: \(status)") }
            return (child, toBrowser[1], fromBrowser[0])
        }
        pid = child
        commands = commandsEnd
        answers = answersEnd
    }

    /// Opens a page target and attaches to it; later commands go to that page.
    func openPage() async throws {
        // The first answer waits for the browser to start: allow a cold start on a busy 2-core machine.
        let target = try await send("Target.createTarget", ["url": "about:blank"], toPage: false, timeout: 90)
        let attached = try await send("Target.attachToTarget", ["targetId": target["targetId"] as Any, "flatten": true], toPage: false)
        session = attached["sessionId"] as? String
        _ = try await send("Page.enable")
        _ = try await send("Runtime.enable")
    }

    /// Sends a command and waits for its answer (events that arrive meanwhile are kept for `wait(for:)`).
    @discardableResult
    func send(_ method: String, _ parameters: [String: Any] = [:], toPage: Bool = true, timeout: Double = 30) async throws -> [String: Any] {
        nextID += 1
        var message: [String: Any] = ["id": nextID, "method": method, "params": parameters]
        if toPage, let session { message["sessionId"] = session }
        var bytes = [UInt8](try JSONSerialization.data(withJSONObject: message)) + [0]
        try bytes.withUnsafeMutableBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = write(commands, raw.baseAddress! + offset, raw.count - offset)
                guard written > 0 else { throw TestSupportError("writing to chromium failed: errno \(errno)") }
                offset += written
            }
        }
        let id = nextID
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let next = try await read(until: deadline, waitingFor: method)
            if next["id"] as? Int == id {
                if let error = next["error"] as? [String: Any] { throw TestSupportError("\(method): \(error["message"] ?? error)") }
                return next["result"] as? [String: Any] ?? [:]
            }
            if next["method"] != nil { events.append(next) }
        }
    }

    /// Waits for an event named `name` (one that already arrived counts), and returns its parameters.
    func wait(for name: String, timeout: Double = 30) async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let index = events.firstIndex(where: { $0["method"] as? String == name }) {
                return events.remove(at: index)["params"] as? [String: Any] ?? [:]
            }
            let next = try await read(until: deadline, waitingFor: name)
            if next["method"] != nil { events.append(next) }
        }
    }

    /// Forgets the events received so far (before an action whose events are awaited).
    func clearEvents() { events.removeAll() }

    /// Evaluates `expression` in the page and returns its value (JSON-compatible values only).
    func evaluate(_ expression: String) async throws -> Any? {
        let result = try await send("Runtime.evaluate", ["expression": expression, "returnByValue": true])
        if let exception = result["exceptionDetails"] as? [String: Any] { throw TestSupportError("script failed: \(exception)") }
        return (result["result"] as? [String: Any])?["value"]
    }

    func navigate(_ url: String) async throws {
        clearEvents()
        try await send("Page.navigate", ["url": url])
        _ = try await wait(for: "Page.loadEventFired")
    }

    /// Focuses the element and types `text` as keyboard input.
    func type(_ selector: String, _ text: String) async throws {
        _ = try await evaluate("document.querySelector(\(Self.quoted(selector))).focus()")
        try await send("Input.insertText", ["text": text])
    }

    /// Clicks the middle of the element with the mouse, as a person would (it must be on screen), and
    /// waits for the page that the click loads.
    func click(_ selector: String, waitForLoad: Bool = true) async throws {
        let rect =
            try await evaluate(
                """
                (() => { const e = document.querySelector(\(Self.quoted(selector))); e.scrollIntoView({block: 'center'});
                         const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()
                """) as? [Double] ?? []
        guard rect.count == 2 else { throw TestSupportError("no element \(selector)") }
        clearEvents()
        for type in ["mousePressed", "mouseReleased"] {
            try await send("Input.dispatchMouseEvent", ["type": type, "x": rect[0], "y": rect[1], "button": "left", "clickCount": 1])
        }
        if waitForLoad { _ = try await wait(for: "Page.loadEventFired") }
    }

    /// A PNG of the viewport, written to `path`.
    func screenshot(_ path: String) async throws {
        let result = try await send("Page.captureScreenshot", ["format": "png", "captureBeyondViewport": true])
        guard let base64 = result["data"] as? String, let data = Data(base64Encoded: base64) else { throw TestSupportError("no screenshot data") }
        try data.write(to: URL(fileURLWithPath: path))
    }

    static func quoted(_ text: String) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: [text]), as: UTF8.self).dropFirst().dropLast().description
    }

    private func read(until deadline: Date, waitingFor what: String) async throws -> [String: Any] {
        while true {
            if let end = buffer.firstIndex(of: 0) {
                let message = Array(buffer[..<end])
                buffer.removeSubrange(...end)
                guard let object = try JSONSerialization.jsonObject(with: Data(message)) as? [String: Any] else { continue }
                return object
            }
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { throw TestSupportError("chromium: no \(what) within the time limit") }
            let answers = answers
            let chunk = try await onOwnThread { () throws -> [UInt8] in
                var descriptor = pollfd(fd: answers, events: Int16(POLLIN), revents: 0)
                guard poll(&descriptor, 1, Int32(min(remaining, 1) * 1_000)) >= 0 else { throw TestSupportError("poll failed") }
                guard descriptor.revents != 0 else { return [] }
                var chunk = [UInt8](repeating: 0, count: 1 << 16)
                let count = Glibc.read(answers, &chunk, chunk.count)
                guard count > 0 else { throw TestSupportError("chromium closed its pipe (see its log)") }
                return Array(chunk[..<count])
            }
            buffer += chunk
        }
    }

    /// Asks the browser to close, waits up to 5 s for it to exit, and removes its profile.
    func close() async {
        guard !closed else { return }
        _ = try? await send("Browser.close", toPage: false, timeout: 5)
        let pid = pid
        let exited =
            (try? await onOwnThread { () -> Bool in
                var status: Int32 = 0
                for _ in 0..<50 {
                    if waitpid(pid, &status, WNOHANG) != 0 { return true }
                    usleep(100_000)
                }
                return false
            }) ?? false
        if exited { reaped = true }
        kill()
    }

    /// Ends the browser at once (SIGKILL) if `close()` has not, and removes its profile; for `defer`.
    func kill() {
        guard !closed else { return }
        closed = true
        Glibc.close(commands)
        Glibc.close(answers)
        if !reaped {
            var status: Int32 = 0
            Glibc.kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
        }
        profile.remove()
    }
}
