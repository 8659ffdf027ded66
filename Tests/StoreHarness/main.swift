// A child process for the refresh-token store's crash and fault tests (not a product).
//
//   tessera-store-harness seed DIR COUNT [RETRY_WINDOW]  issue COUNT families, print their tokens
//   tessera-store-harness rotate DIR TASKS [COMPACT_AT]  rotate the tokens read from stdin from TASKS tasks
//                                                        until killed or the store fails; print one line per
//                                                        acknowledged result: "R old new", "N new", "V token"
//   tessera-store-harness compact DIR                    issue a few families, compact, close (for strace)
//   tessera-store-harness hold DIR                       open the store, print "READY", wait to be killed
//
// Every line is printed only after the store returned, i.e. after the record is durable, and with one
// write(2) of less than PIPE_BUF bytes, so a kill never leaves half a line but a whole or nothing.
import Foundation
import TesseraIssuer

#if canImport(Glibc)
import Glibc
#endif

func emit(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else { fail("usage: tessera-store-harness seed|rotate|hold DIR ...") }
let directory = arguments[2]
signal(SIGXFSZ, SIG_IGN)  // a file-size limit (ulimit -f) must surface as EFBIG, not kill the process

func open(compactionThreshold: Int = 64 << 20) -> FileRefreshTokenStore {
    do { return try FileRefreshTokenStore(directory: directory, options: .init(compactionThreshold: compactionThreshold)) } catch {
        fail("open failed: \(error)")
    }
}

let family = { (window: Int) in
    NewRefreshTokenFamily(
        clientID: "crash-client", subject: "user-\(Int.random(in: 0..<1_000_000))", scope: ["read", "write"],
        authTime: Date(), policy: RefreshTokenPolicy(retryWindow: window))
}

switch arguments[1] {
case "seed":
    let store = open()
    let window = arguments.count > 4 ? Int(arguments[4]) ?? 0 : 0
    for _ in 0..<(Int(arguments[3]) ?? 1) {
        do { emit(try await store.issue(family(window)).token.rawValue) } catch { fail("issue failed: \(error)") }
    }
    store.close()

case "rotate":
    let store = open(compactionThreshold: arguments.count > 4 ? Int(arguments[4]) ?? 64 << 20 : 64 << 20)
    let tasks = Int(arguments[3]) ?? 8
    var tokens: [String] = []
    while let line = readLine() { if !line.isEmpty { tokens.append(line) } }
    emit("READY")
    await withTaskGroup(of: Void.self) { group in
        for task in 0..<tasks {
            let assigned = stride(from: task, to: tokens.count, by: tasks).map { RefreshToken(tokens[$0]) }
            group.addTask {
                var mine = assigned
                var operation = 0
                while !mine.isEmpty {
                    operation += 1
                    let slot = operation % mine.count
                    do {
                        if operation % 10 == 0 {
                            let issued = try await store.issue(family(0))
                            emit("N \(issued.token.rawValue)")
                            mine.append(issued.token)
                        } else if operation % 25 == 0, mine.count > 1 {
                            let token = mine.remove(at: slot)
                            if try await store.revokeFamily(of: token, clientID: "crash-client") { emit("V \(token.rawValue)") }
                        } else {
                            let rotation = try await store.rotate(mine[slot], clientID: "crash-client", scope: nil)
                            emit("R \(mine[slot].rawValue) \(rotation.successor.token.rawValue)")
                            mine[slot] = rotation.successor.token
                        }
                    } catch let error as RefreshTokenStoreError {
                        emit("E \(error.code)")
                        if error.code == .unavailable { return }
                        fail("unexpected store error: \(error)")
                    } catch {
                        fail("unexpected error: \(error)")
                    }
                }
            }
        }
    }
    emit("DONE")

case "compact":
    let store = open()
    do {
        for _ in 0..<5 { _ = try await store.issue(family(0)) }
        try await store.compact()
    } catch { fail("compact failed: \(error)") }
    store.close()

case "hold":
    let store = open()
    emit("READY")
    withExtendedLifetime(store) { while true { sleep(60) } }

default:
    fail("unknown mode \(arguments[1])")
}
