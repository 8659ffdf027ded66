import Foundation
import TesseraTestSupport
import Testing

@testable import TesseraIssuer

/// What the parent learned from a child's acknowledgements: chains of tokens, one per family.
final class AcknowledgedState {
    private(set) var chains: [[RefreshToken]] = []
    private(set) var revoked = Set<Int>()
    private var chainOfToken: [RefreshToken: Int] = [:]
    /// Chains whose last token is known to be live (what the next child may rotate).
    private(set) var usable = Set<Int>()

    func add(_ token: RefreshToken) {
        chainOfToken[token] = chains.count
        usable.insert(chains.count)
        chains.append([token])
    }

    var usableTokens: [RefreshToken] { usable.sorted().map { chains[$0].last! } }

    /// Applies the complete lines of a child's output; returns how many acknowledgements there were.
    func apply(_ output: String) throws -> (acks: Int, errors: [String]) {
        var acks = 0
        var errors: [String] = []
        // A killed child may leave an unterminated last line: it was never acknowledged.
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        for line in lines {
            let fields = line.split(separator: " ").map(String.init)
            switch fields.first {
            case "R":
                guard let chain = chainOfToken[RefreshToken(fields[1])] else { throw TestSupportError("rotation of a token the parent never saw") }
                chains[chain].append(RefreshToken(fields[2]))
                chainOfToken[RefreshToken(fields[2])] = chain
                acks += 1
            case "N":
                add(RefreshToken(fields[1]))
                acks += 1
            case "V":
                guard let chain = chainOfToken[RefreshToken(fields[1])] else { throw TestSupportError("revocation of a token the parent never saw") }
                revoked.insert(chain)
                usable.remove(chain)
                acks += 1
            case "E":
                errors.append(fields.dropFirst().joined(separator: " "))
            case "READY", "DONE":
                break
            default:
                throw TestSupportError("unexpected line from the child: \(line.prefix(20))")
            }
        }
        return (acks, errors)
    }

    /// Reopens the store and checks every acknowledged fact. `inFlight` bounds the unacknowledged
    /// operations that may have become durable (one per child task). Returns how many chains changed
    /// without an acknowledgement.
    func verify(_ path: String, inFlight: Int, full: Bool = true, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Int {
        let store = try FileRefreshTokenStore(directory: path)
        defer { store.close() }
        var surprises = 0
        if checked.count < chains.count { checked += [Int](repeating: 0, count: chains.count - checked.count) }
        for (chain, tokens) in chains.enumerated() {
            // Tokens checked in an earlier round are checked again only in the final, full pass.
            var from = full ? 0 : checked[chain]
            if !revoked.contains(chain), !unacknowledgedRevocations.contains(chain) {
                let last = try await store.record(for: tokens.last!)
                if last?.state != .live, usable.contains(chain) {
                    // An unacknowledged rotation or revocation of the last token became durable: allowed,
                    // at most once per child task; the parent cannot use that family any more.
                    surprises += 1
                    usable.remove(chain)
                    if last == nil {
                        unacknowledgedRevocations.insert(chain)
                        from = 0  // the whole family is dead now: check every token of it
                    }
                }
            }
            if revoked.contains(chain) || unacknowledgedRevocations.contains(chain) {
                for token in tokens[from...] { #expect(try await store.record(for: token) == nil, sourceLocation: sourceLocation) }
                checked[chain] = tokens.count
                continue
            }
            for token in tokens.dropLast().dropFirst(from) {
                #expect(
                    try await store.record(for: token)?.state == .rotated, "an acknowledged rotated-away token is not dead",
                    sourceLocation: sourceLocation)
            }
            checked[chain] = tokens.count - 1
        }
        // Families the child issued but never acknowledged: they never go away (no one holds their tokens).
        let expected = chains.count - revoked.count - unacknowledgedRevocations.count
        let excess = await store.statistics().families - expected
        #expect(excess >= unacknowledgedIssues, "acknowledged families are missing", sourceLocation: sourceLocation)
        #expect(
            surprises + (excess - unacknowledgedIssues) <= inFlight,
            "\(surprises) families changed and \(excess - unacknowledgedIssues) appeared without an acknowledgement", sourceLocation: sourceLocation)
        unacknowledgedIssues = excess
        return surprises
    }

    private var checked: [Int] = []
    private var unacknowledgedRevocations = Set<Int>()
    private var unacknowledgedIssues = 0
}

/// Runs `tessera-store-harness rotate` on `tokens`; kills it with SIGKILL `killAfter` seconds after it is
/// ready (nil: lets it run to its own end). `shell` wraps the command (for ulimit).
func runRotationChild(
    _ path: String, tokens: [RefreshToken], tasks: Int, killAfter: Double?,
    environment: [String: String] = [:], shellPrefix: String? = nil,
    compactionThreshold: Int = 64 << 20
) async throws -> (output: String, status: Int32) {
    try await onOwnThread {
        let harness = builtExecutable("tessera-store-harness")
        let arguments = ["rotate", path, String(tasks), String(compactionThreshold)]
        let environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let child =
            try shellPrefix.map {
                try ChildProcess(
                    "/bin/sh", ["-c", "\($0); exec \"$0\" \"$@\"", harness] + arguments, environment: environment, input: true, output: .pipes)
            }
            ?? ChildProcess(harness, arguments, environment: environment, input: true, output: .pipes)
        writeFully(child.stdin, Data(tokens.map { $0.rawValue + "\n" }.joined().utf8))
        child.closeInput()
        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while !String(decoding: received, as: UTF8.self).contains("READY\n") {
            let count = read(child.stdout, &buffer, buffer.count)
            if count < 0, errno == EINTR { continue }
            if count <= 0 { break }
            received.append(contentsOf: buffer[0..<count])
        }
        if let killAfter {
            usleep(UInt32(killAfter * 1_000_000))
            child.kill(SIGKILL)
        }
        received += readToEnd(child.stdout)
        let status = child.wait()
        return (String(decoding: received, as: UTF8.self), status)
    }
}

func seedStore(_ path: String, families: Int, into state: AcknowledgedState) async throws {
    let store = try FileRefreshTokenStore(directory: path)
    defer { store.close() }
    for index in 0..<families {
        state.add(
            try await store.issue(NewRefreshTokenFamily(clientID: "crash-client", subject: "seed\(index)", scope: ["read"], authTime: Date())).token)
    }
}

@Suite("Refresh-token store: crashes and I/O faults in a real child process", .serialized)
struct CrashTests {
    static let rounds = Int(ProcessInfo.processInfo.environment["TESSERA_CRASH_ROUNDS"] ?? "") ?? 200

    @Test(
        "THREATS C1: SIGKILL at a random 0–50 ms point, many rounds: acknowledged rotations survive, rotated-away tokens stay dead, nothing else changes"
    )
    func killNineRounds() async throws {
        let (folder, path) = try TemporaryDirectory.holding("store", label: "tessera-crash")
        defer { folder.remove() }
        let state = AcknowledgedState()
        try await seedStore(path, families: 48, into: state)
        let tasks = 8
        var totalAcks = 0
        var totalSurprises = 0
        var killedBeforeDone = 0
        for round in 0..<Self.rounds {
            if state.usable.count < 2 * tasks {
                try await seedStore(path, families: 2 * tasks, into: state)
            }
            let (output, status) = try await runRotationChild(
                path, tokens: state.usableTokens, tasks: tasks, killAfter: Double.random(in: 0...0.050),
                compactionThreshold: 256 << 10)  // compactions get killed too
            if status == 128 + SIGKILL { killedBeforeDone += 1 }
            let (acks, errors) = try state.apply(output)
            #expect(errors.isEmpty, "round \(round): \(errors.prefix(3))")
            totalAcks += acks
            totalSurprises += try await state.verify(path, inFlight: tasks, full: round == Self.rounds - 1)
        }
        #expect(totalAcks > Self.rounds)
        #expect(killedBeforeDone == Self.rounds)
        print(
            "kill -9: \(Self.rounds) rounds, \(totalAcks) acknowledged operations checked, \(totalSurprises) unacknowledged operations found durable")
    }

    @Test(
        "THREATS C3: an fsync that fails (EIO, injected with LD_PRELOAD) acknowledges nothing, leaves none of its group durable, and makes the store refuse work until restart"
    )
    func fsyncFailure() async throws {
        let folder = try TemporaryDirectory("tessera-eio")
        defer { folder.remove() }
        let shim = try await buildFaultShim(in: folder)
        let path = folder.appending("store")
        let state = AcknowledgedState()
        try await seedStore(path, families: 32, into: state)
        let (output, status) = try await runRotationChild(
            path, tokens: state.usableTokens, tasks: 8, killAfter: nil,
            environment: ["LD_PRELOAD": shim, "TESSERA_FAIL_FDATASYNC_AT": "25"])
        #expect(status == 0 && output.hasSuffix("DONE\n"))
        let (acks, errors) = try state.apply(output)
        #expect(errors.count == 8 && errors.allSatisfy { $0 == "store_unavailable" })
        #expect(acks >= 24)
        // Every operation was answered, and those answered with an error must not have happened (issue 18, item 1).
        _ = try await state.verify(path, inFlight: 0)
        // After the restart (without the fault) the store works again.
        let store = try FileRefreshTokenStore(directory: path)
        _ = try await store.rotate(state.usableTokens[0], clientID: "crash-client", scope: nil)
        store.close()
    }

    @Test("THREATS C4: a full disk (file-size limit, EFBIG) fails the writes, loses nothing acknowledged, and the store reopens")
    func diskFull() async throws {
        let (folder, path) = try TemporaryDirectory.holding("store", label: "tessera-full")
        defer { folder.remove() }
        let state = AcknowledgedState()
        try await seedStore(path, families: 32, into: state)
        let logSize = try fileBytes(path + "/" + StoreFileName.log(1)).count
        // ulimit -f counts 512-byte blocks (POSIX sh): allow about 40 KB more log.
        let blocks = (logSize + 40_000) / 512
        let (output, status) = try await runRotationChild(
            path, tokens: state.usableTokens, tasks: 8, killAfter: nil, shellPrefix: "ulimit -f \(blocks)")
        #expect(status == 0 && output.hasSuffix("DONE\n"))
        let (acks, errors) = try state.apply(output)
        #expect(errors.count == 8 && errors.allSatisfy { $0 == "store_unavailable" })
        #expect(acks > 100)
        _ = try await state.verify(path, inFlight: 0)
        let store = try FileRefreshTokenStore(directory: path)
        _ = try await store.rotate(state.usableTokens[0], clientID: "crash-client", scope: nil)
        store.close()
    }

    @Test(
        "Issue 18 item 1: a disk that fills in the middle of a group (the write lets all but its last byte in, then ENOSPC) leaves none of that group durable; every refused client's retry succeeds after the restart"
    )
    func diskFullInTheMiddleOfAGroup() async throws {
        let folder = try TemporaryDirectory("tessera-enospc")
        defer { folder.remove() }
        let shim = try await buildFaultShim(in: folder)
        let path = folder.appending("store")
        let state = AcknowledgedState()
        try await seedStore(path, families: 64, into: state)
        // The 30th log write of at least 1 KB (several whole records, from 16 tasks) is cut short.
        let (output, status) = try await runRotationChild(
            path, tokens: state.usableTokens, tasks: 16, killAfter: nil,
            environment: ["LD_PRELOAD": shim, "TESSERA_FAIL_WRITE_AFTER": "30", "TESSERA_FAIL_WRITE_MIN": "1024"])
        #expect(status == 0 && output.hasSuffix("DONE\n"))
        let (acks, errors) = try state.apply(output)
        #expect(errors.count == 16 && errors.allSatisfy { $0 == "store_unavailable" })
        #expect(acks >= 30)
        #expect(try await state.verify(path, inFlight: 0) == 0)
        // Each refused client retries with its last acknowledged token, as a client told 503 does.
        let store = try FileRefreshTokenStore(directory: path)
        defer { store.close() }
        let revokedBefore = await store.statistics().revokedFamilies
        for token in state.usableTokens {
            _ = try await store.rotate(token, clientID: "crash-client", scope: nil)
        }
        #expect(await store.statistics().revokedFamilies == revokedBefore, "a retry was taken for reuse")
    }
}

@Suite("Refresh-token store: system calls")
struct SystemCallTests {
    @Test("THREATS C2: every rename into the store folder is followed by an fsync of the folder (strace)")
    func renameThenDirectoryFsync() async throws {
        let (folder, path) = try TemporaryDirectory.holding("store", label: "tessera-strace")
        defer { folder.remove() }
        let (status, err, lines) = try await traceSystemCalls(
            "fsync,fdatasync,rename,renameat,renameat2", of: builtExecutable("tessera-store-harness"), ["compact", path], in: folder, showPaths: true)
        #expect(status == 0, "strace (apt-get install strace) must be able to run the harness: \(err)")
        let renames = lines.indices.filter { lines[$0].contains("rename") && !lines[$0].contains("resumed") }
        // log 1 at creation, log 2 when compaction switches, snapshot 2.
        #expect(renames.count == 3, "\(renames.map { lines[$0] })")
        for index in renames {
            #expect(lines[index].hasSuffix("= 0"), "\(lines[index])")
            let next = lines[(index + 1)...].first { $0.contains("fsync(") || $0.contains("fdatasync(") }
            #expect(
                next?.contains("fsync(") == true && next?.contains("<\(path)>)") == true,
                "after \(lines[index]) the next sync is \(next ?? "none"), not of the folder")
        }
        // The files themselves were synced before being renamed into place.
        for index in renames {
            let before = lines[..<index].last { $0.contains("fsync(") || $0.contains("fdatasync(") }
            #expect(before?.contains(".tmp>)") == true, "before \(lines[index]): \(before ?? "none")")
        }
    }
}
