import Foundation
import TesseraJOSE
import TesseraTestSupport
import Testing

@testable import TesseraIssuer

final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [FileRefreshTokenStore.StoreEvent] = []
    var events: [FileRefreshTokenStore.StoreEvent] { lock.withLock { stored } }
    func record(_ event: FileRefreshTokenStore.StoreEvent) { lock.withLock { stored.append(event) } }
}

func family(_ subject: String = "alice", window: Int = 0) -> NewRefreshTokenFamily {
    NewRefreshTokenFamily(
        clientID: "app", subject: subject, scope: ["read"], authTime: Date(),
        policy: RefreshTokenPolicy(retryWindow: window))
}

func fileBytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

func storeFiles(_ path: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: path).filter { $0 != "LOCK" }.sorted()
}

/// Issues `count` families whose subjects are `prefix0`, `prefix1`, …; returns their first tokens.
func issueFamilies(_ store: FileRefreshTokenStore, _ count: Int, prefix: String = "u") async throws -> [RefreshToken] {
    var tokens: [RefreshToken] = []
    for index in 0..<count { tokens.append(try await store.issue(family("\(prefix)\(index)")).token) }
    return tokens
}

/// Opens the store at `path` again and expects every one of `tokens` live in it.
func expectLive(_ tokens: [RefreshToken], reopening path: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let reopened = try FileRefreshTokenStore(directory: path)
    defer { reopened.close() }
    for token in tokens { #expect(try await reopened.record(for: token)?.state == .live, sourceLocation: sourceLocation) }
}

@Suite("File refresh-token store: format, recovery, locking, files")
struct FileStoreTests {
    @Test("THREATS C1: truncating the log at every byte offset of its last record reopens with the record dropped, all else intact")
    func tornTailAtEveryOffset() async throws {
        let (folder, path) = try TemporaryDirectory.holding("store", label: "tessera-torn")
        defer { folder.remove() }
        var store: FileRefreshTokenStore? = try FileRefreshTokenStore(directory: path)
        let keep = try await store!.issue(family("keep"))
        let rotated = try await store!.rotate(keep.token, clientID: "app", scope: nil)
        let logPath = path + "/" + StoreFileName.log(1)
        let before = try fileBytes(logPath).count
        let last = try await store!.issue(family("last"))
        store!.close()
        store = nil
        let full = try fileBytes(logPath)
        #expect(full.count > before)
        for cut in before..<full.count {
            let copy = folder.appending("copy-\(cut)")
            try FileManager.default.copyItem(atPath: path, toPath: copy)
            let copyLog = copy + "/" + StoreFileName.log(1)
            try Data(full[0..<cut]).write(to: URL(fileURLWithPath: copyLog))
            let events = EventLog()
            let reopened = try FileRefreshTokenStore(directory: copy, options: .init(onEvent: events.record))
            #expect(try await reopened.record(for: rotated.successor.token)?.state == .live, "cut at \(cut)")
            #expect(try await reopened.record(for: keep.token)?.state == .rotated, "cut at \(cut)")
            #expect(try await reopened.record(for: last.token) == nil, "cut at \(cut)")
            #expect(
                events.events == (cut == before ? [] : [.tornTailDropped(file: StoreFileName.log(1), offset: before, bytes: cut - before)]),
                "cut at \(cut)")
            // The store keeps working after the cut: new records land where the torn one was.
            let again = try await reopened.issue(family("again"))
            reopened.close()
            let third = try FileRefreshTokenStore(directory: copy)
            #expect(try await third.record(for: again.token)?.state == .live, "cut at \(cut)")
            third.close()
            try FileManager.default.removeItem(atPath: copy)
        }
        let whole = try FileRefreshTokenStore(directory: path)
        #expect(try await whole.record(for: last.token)?.state == .live)
        whole.close()
    }

    @Test("A bad checksum before the tail stops the start, naming the file and the offset; a torn tail of zeros does not")
    func corruptionIsNotATornTail() async throws {
        let (folder, path) = try TemporaryDirectory.holding("store", label: "tessera-corrupt")
        defer { folder.remove() }
        let store = try FileRefreshTokenStore(directory: path)
        for index in 0..<5 { _ = try await store.issue(family("user\(index)")) }
        store.close()
        let logPath = path + "/" + StoreFileName.log(1)
        var bytes = try fileBytes(logPath)
        let original = bytes
        // Zeros appended (a file system that extended the file but never wrote the data): a torn tail.
        bytes += [UInt8](repeating: 0, count: 300)
        try Data(bytes).write(to: URL(fileURLWithPath: logPath))
        let reopened = try FileRefreshTokenStore(directory: path)
        #expect(await reopened.statistics().families == 5)
        reopened.close()
        #expect(try fileBytes(logPath) == original)

        // One flipped byte in the second record.
        bytes = original
        let second = StoreFormat.headerSize + (bytes.count - StoreFormat.headerSize) / 5 + 20
        bytes[second] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: logPath))
        let error = expectError(StoreCode.corrupt) { _ = try FileRefreshTokenStore(directory: path) }
        let message = error?.message ?? ""
        #expect(
            message.contains(StoreFileName.log(1)) && message.contains("offset") && !message.contains("tessera store"),
            "the library names no CLI command")
        // Nothing was changed by the failed start.
        #expect(try fileBytes(logPath) == bytes)
    }

    @Test("THREATS C5: a second opener, in this process or another, is refused and told who holds the store")
    func exclusiveLock() async throws {
        let (folder, path) = try TemporaryDirectory.holding("store", label: "tessera-lock")
        defer { folder.remove() }
        let store = try FileRefreshTokenStore(directory: path)
        let error = expectError(StoreCode.locked) { _ = try FileRefreshTokenStore(directory: path) }
        #expect(error?.message.contains("process \(getpid())") == true)
        store.close()

        let holder = try ChildProcess(builtExecutable("tessera-store-harness"), ["hold", path], output: .pipes)
        defer {
            holder.kill(SIGKILL)
            holder.wait()
        }
        let ready = try await onOwnThread { () -> String in
            var buffer = [UInt8](repeating: 0, count: 256)
            let count = read(holder.stdout, &buffer, buffer.count)
            return String(decoding: buffer.prefix(max(0, count)), as: UTF8.self)
        }
        #expect(ready.hasPrefix("READY"))
        let crossProcess = expectError(StoreCode.locked) { _ = try FileRefreshTokenStore(directory: path) }
        #expect(crossProcess?.message.contains("process \(holder.pid)") == true)
    }

    @Test("Files are 0600 and the folder 0700 under umask 022; an unsafe folder or a symlink is refused")
    func permissionsAndSymlinks() async throws {
        let folder = try TemporaryDirectory("tessera-perm")
        defer { folder.remove() }
        let previous = umask(0o022)
        defer { umask(previous) }
        let path = folder.appending("store")
        let store = try FileRefreshTokenStore(directory: path)
        for index in 0..<3 { _ = try await store.issue(family("u\(index)")) }
        try await store.compact()
        store.close()
        let files = try FileManager.default.contentsOfDirectory(atPath: path)
        #expect(files.contains { $0.hasPrefix("snapshot.") })
        for name in files {
            let mode = try fileMode(path + "/" + name)
            #expect(mode == 0o600, "\(name) is \(String(mode, radix: 8))")
        }
        #expect(try fileMode(path) == 0o700)

        chmod(path, 0o770)
        expectError(StoreCode.badDirectory) { _ = try FileRefreshTokenStore(directory: path) }
        chmod(path, 0o700)
        let link = folder.appending("link")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: path)
        expectError(StoreCode.badDirectory) { _ = try FileRefreshTokenStore(directory: link) }
        // A symlink planted as the newest log is not followed.
        let target = folder.appending("elsewhere")
        #expect(FileManager.default.createFile(atPath: target, contents: Data()))
        try FileManager.default.createSymbolicLink(atPath: path + "/" + StoreFileName.log(3), withDestinationPath: target)
        expectError(StoreCode.badDirectory) { _ = try FileRefreshTokenStore(directory: path) }
        #expect(try fileBytes(target).isEmpty)
    }

    @Test("THREATS C10, RFC 9700 §4.14: no token, secret or family handle appears in any store file")
    func noPlaintextTokensAtRest() async throws {
        let (folder, path) = try TemporaryDirectory.holding("store", label: "tessera-plain")
        defer { folder.remove() }
        let store = try FileRefreshTokenStore(directory: path)
        var tokens: [RefreshToken] = []
        for index in 0..<20 {
            let issued = try await store.issue(family("user\(index)", window: 30))
            let rotated = try await store.rotate(issued.token, clientID: "app", scope: nil)
            tokens += [issued.token, rotated.successor.token]
        }
        try await store.compact()
        for index in 0..<5 { tokens.append(try await store.issue(family("late\(index)")).token) }
        store.close()
        let contents = try storeFiles(path).map { try fileBytes(path + "/" + $0) }
        #expect(contents.count >= 2)
        for token in tokens {
            let decoded = try Base64URL.decode(String(token.rawValue.dropFirst(4)))
            let needles: [[UInt8]] = [
                Array(token.rawValue.utf8), Array(token.rawValue.utf8.dropFirst(4).prefix(22)),
                Array(decoded[0..<16]), Array(decoded[20..<52]),
            ]
            for file in contents {
                for needle in needles {
                    #expect(!contains(file, needle))
                }
            }
        }
    }

    @Test("Compaction: same state before and after, rotations continue during it, covered files are deleted")
    func compaction() async throws {
        let (folder, path) = try TemporaryDirectory.holding("store", label: "tessera-compact")
        defer { folder.remove() }
        let clock = SteppedClock()
        let store = try FileRefreshTokenStore(directory: path, options: .init(compactionThreshold: Int.max, clock: clock.wallClock))
        var live: [RefreshToken] = []
        var dead: [RefreshToken] = []
        for index in 0..<200 {
            let issued = try await store.issue(
                NewRefreshTokenFamily(
                    clientID: "app", subject: "u\(index)", scope: ["read"], authTime: clock.now,
                    policy: RefreshTokenPolicy(absoluteLifetime: index < 50 ? 100 : 10_000, idleLifetime: 100)))
            let next = try await store.rotate(issued.token, clientID: "app", scope: nil).successor.token
            dead.append(issued.token)
            live.append(next)
        }
        let revoked = live.removeLast()
        #expect(try await store.revokeFamily(of: revoked, clientID: "app"))
        clock.advance(50)
        // Rotations while compaction runs.
        async let report = store.compact()
        var rotatedDuring: [RefreshToken] = []
        for index in 100..<150 {
            rotatedDuring.append(try await store.rotate(live[index], clientID: "app", scope: nil).successor.token)
        }
        let finished = try await report
        #expect(finished.generation == 2 && finished.families == 200)  // the revoked family stays as a tombstone
        clock.advance(60)  // the 50 short families and everything not rotated since pass their 100 s lifetimes
        try await store.compact()
        store.close()
        #expect(try storeFiles(path) == [StoreFileName.log(3), StoreFileName.snapshot(3)])
        let reopened = try FileRefreshTokenStore(directory: path, options: .init(clock: clock.wallClock))
        #expect(await reopened.statistics().families == 50)
        for token in rotatedDuring { #expect(try await reopened.record(for: token)?.state == .live) }
        for token in live[0..<100] { #expect(try await reopened.record(for: token) == nil) }
        await expectError(StoreCode.unknownToken) { _ = try await reopened.rotate(live[60], clientID: "app", scope: nil) }
        await expectError(StoreCode.reuseDetected) { _ = try await reopened.rotate(live[120], clientID: "app", scope: nil) }
        _ = try await reopened.rotate(rotatedDuring[0], clientID: "app", scope: nil)
        reopened.close()
    }

    @Test("A family's context (an OpenID Connect grant's sid and claims) survives the log, a restart, rotation and compaction; none stays none")
    func familyContext() async throws {
        let (folder, path) = try TemporaryDirectory.holding("store", label: "tessera-context")
        defer { folder.remove() }
        let clock = SteppedClock()
        let context = "oidc1 sid=abc ui=email,name"
        var store = try FileRefreshTokenStore(directory: path, options: .init(compactionThreshold: Int.max, clock: clock.wallClock))
        let with = try await store.issue(
            NewRefreshTokenFamily(clientID: "app", subject: "s1", scope: ["openid"], authTime: clock.now, context: context))
        let without = try await store.issue(family("s2"))
        #expect(with.record.context == context && without.record.context == "")
        await expectError(StoreCode.invalidRequest) {
            _ = try await store.issue(
                NewRefreshTokenFamily(clientID: "app", subject: "s3", scope: [], authTime: clock.now, context: String(repeating: "x", count: 1_025)))
        }
        store.close()
        store = try FileRefreshTokenStore(directory: path, options: .init(compactionThreshold: Int.max, clock: clock.wallClock))
        let rotated = try await store.rotate(with.token, clientID: "app", scope: nil)
        #expect(rotated.successor.record.context == context)
        try await store.compact()
        store.close()
        store = try FileRefreshTokenStore(directory: path, options: .init(clock: clock.wallClock))
        #expect(try await store.record(for: rotated.successor.token)?.context == context)
        #expect(try await store.record(for: without.token)?.context == "")
        store.close()
    }

    @Test("A compaction that died after writing its snapshot, or before renaming it, leaves a store that opens whole")
    func interruptedCompaction() async throws {
        let (folder, path) = try TemporaryDirectory.holding("store", label: "tessera-interrupt")
        defer { folder.remove() }
        let store = try FileRefreshTokenStore(directory: path)
        var tokens = try await issueFamilies(store, 10, prefix: "u")
        try await store.compact()
        for index in 0..<10 { tokens[index] = try await store.rotate(tokens[index], clientID: "app", scope: nil).successor.token }
        store.close()
        let snapshot = try fileBytes(path + "/" + StoreFileName.snapshot(2))
        // Died before the rename: a partial temporary file is left behind.
        try Data(snapshot.prefix(40)).write(to: URL(fileURLWithPath: path + "/" + StoreFileName.snapshot(3) + ".tmp"))
        // Died after renaming snapshot 2 but before deleting log 1: an old log is left behind.
        try Data(StoreFormat.header(.init(kind: .log, generation: 1, createdAt: 0))).write(
            to: URL(fileURLWithPath: path + "/" + StoreFileName.log(1)))
        try await expectLive(tokens, reopening: path)
        #expect(try storeFiles(path) == [StoreFileName.log(2), StoreFileName.snapshot(2)])
    }

    @Test("THREATS C11: restoring a backup and then revoking every family keeps a revoked token dead")
    func restoreFromBackup() async throws {
        let (folder, path) = try TemporaryDirectory.holding("store", label: "tessera-restore")
        defer { folder.remove() }
        let backup = folder.appending("backup")
        var store = try FileRefreshTokenStore(directory: path)
        let token = try await store.issue(family()).token
        store.close()
        try FileManager.default.copyItem(atPath: path, toPath: backup)
        store = try FileRefreshTokenStore(directory: path)
        #expect(try await store.revokeFamily(of: token, clientID: "app"))
        store.close()
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.copyItem(atPath: backup, toPath: path)
        // The backup alone would resurrect the family: this is why restoring requires the revocation below.
        store = try FileRefreshTokenStore(directory: path)
        #expect(try await store.record(for: token)?.state == .live)
        #expect(try await store.revokeAllFamilies() == 1)
        store.close()
        store = try FileRefreshTokenStore(directory: path)
        await expectError(StoreCode.revoked) { _ = try await store.rotate(token, clientID: "app", scope: nil) }
        store.close()
    }

    @Test("CRC-32C matches the RFC 3720 check values")
    func crc32c() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum(Array(0..<32)) == 0x46DD_794E)
    }
}

func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard needle.count <= haystack.count, let first = needle.first else { return false }
    var index = 0
    while index <= haystack.count - needle.count {
        if haystack[index] == first, Array(haystack[index..<index + needle.count]) == needle { return true }
        index += 1
    }
    return false
}

@Suite("tessera store check / repair (library side)")
struct StoreMaintenanceTests {
    @Test("check reports counts and a torn tail without changing a byte; it refuses a store a server holds")
    func check() async throws {
        let (folder, path) = try TemporaryDirectory.holding("store", label: "tessera-check")
        defer { folder.remove() }
        let store = try FileRefreshTokenStore(directory: path)
        let kept = try await store.issue(family("a")).token
        _ = try await store.issue(family("b"))
        #expect(try await store.revokeFamily(of: kept, clientID: "app"))
        expectError(StoreCode.locked) { _ = try FileRefreshTokenStore.check(directory: path) }
        store.close()
        let log = path + "/" + StoreFileName.log(1)
        let bytes = try fileBytes(log) + [1, 2, 3]
        try Data(bytes).write(to: URL(fileURLWithPath: log))
        let report = try FileRefreshTokenStore.check(directory: path)
        #expect(report.families == 1 && report.revokedFamilies == 1 && report.records == 3)
        #expect(report.tornTail == .init(file: StoreFileName.log(1), offset: bytes.count - 3, bytes: 3))
        #expect(report.files == [StoreFileName.log(1)])
        #expect(try fileBytes(log) == bytes)
    }

    @Test("repair keeps the records before the damage, moves the rest aside, and revokes every family")
    func repairLog() async throws {
        let (folder, path) = try TemporaryDirectory.holding("store", label: "tessera-repair")
        defer { folder.remove() }
        let store = try FileRefreshTokenStore(directory: path)
        let tokens = try await issueFamilies(store, 6, prefix: "user")
        store.close()
        let log = path + "/" + StoreFileName.log(1)
        var bytes = try fileBytes(log)
        let recordSize = (bytes.count - StoreFormat.headerSize) / 6
        let damagedAt = StoreFormat.headerSize + 3 * recordSize
        bytes[damagedAt + 30] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: log))
        expectError(StoreCode.corrupt) { _ = try FileRefreshTokenStore.check(directory: path) }

        let repair = try await FileRefreshTokenStore.repair(directory: path)
        #expect(repair.revokedFamilies == 3)
        #expect(repair.actions.first?.contains("offset \(damagedAt)") == true)
        #expect(try fileBytes(path + "/" + StoreFileName.log(1) + ".damaged-\(damagedAt)") == Array(bytes[damagedAt...]))
        let reopened = try FileRefreshTokenStore(directory: path)
        for token in tokens[0..<3] { await expectError(StoreCode.revoked) { _ = try await reopened.rotate(token, clientID: "app", scope: nil) } }
        for token in tokens[3...] { await expectError(StoreCode.unknownToken) { _ = try await reopened.rotate(token, clientID: "app", scope: nil) } }
        _ = try await reopened.issue(family("after"))
        reopened.close()
        #expect(try await FileRefreshTokenStore.repair(directory: path).actions == ["nothing to repair"])
    }

    @Test("repair replaces a damaged snapshot and fills a missing log; the store opens again")
    func repairSnapshotAndGap() async throws {
        let (folder, path) = try TemporaryDirectory.holding("store", label: "tessera-repair2")
        defer { folder.remove() }
        let store = try FileRefreshTokenStore(directory: path)
        let old = try await store.issue(family("old")).token
        try await store.compact()
        _ = try await store.issue(family("middle"))
        try await store.compact()
        let late = try await store.issue(family("late")).token
        store.close()
        let snapshot = path + "/" + StoreFileName.snapshot(3)
        var bytes = try fileBytes(snapshot)
        bytes[StoreFormat.headerSize + 12] ^= 1
        try Data(bytes).write(to: URL(fileURLWithPath: snapshot))
        // As if a compaction had switched to log 4 and log 3 were then lost.
        try Data(StoreFormat.header(.init(kind: .log, generation: 4, createdAt: 0))).write(
            to: URL(fileURLWithPath: path + "/" + StoreFileName.log(4)))
        try FileManager.default.moveItem(atPath: path + "/" + StoreFileName.log(3), toPath: folder.appending("elsewhere"))
        let error = expectError(StoreCode.corrupt) { _ = try FileRefreshTokenStore(directory: path) }
        #expect(error?.message.contains(StoreFileName.log(3) + " is missing") == true)
        let repair = try await FileRefreshTokenStore.repair(directory: path, revokeEveryFamily: false)
        #expect(repair.actions.count == 2 && repair.revokedFamilies == 0)
        let reopened = try FileRefreshTokenStore(directory: path)
        #expect(try await reopened.record(for: old) == nil)
        #expect(try await reopened.record(for: late) == nil)
        reopened.close()
    }
}

@Suite("File store lifecycle")
struct FileStoreLifecycleTests {
    @Test("close waits for a running compaction before releasing the lock; operations after close are refused")
    func closeDuringCompaction() async throws {
        let (folder, path) = try TemporaryDirectory.holding("store", label: "tessera-close")
        defer { folder.remove() }
        let store = try FileRefreshTokenStore(directory: path)
        let tokens = try await issueFamilies(store, 500, prefix: "u")
        async let compaction: Void = { _ = try? await store.compact() }()
        store.close()
        await compaction
        await expectError(StoreCode.unavailable) { _ = try await store.issue(family()) }
        await expectError(StoreCode.unavailable) { try await store.compact() }
        try await expectLive(tokens, reopening: path)
        let report = try FileRefreshTokenStore.check(directory: path)
        #expect(report.families == 500 && report.tornTail == nil)
    }
}

extension FileStoreLifecycleTests {
    @Test("A compaction interrupted after switching logs is finished by the next one without another switch")
    func interruptedCompactionsDoNotPileUpLogs() async throws {
        let (folder, path) = try TemporaryDirectory.holding("store", label: "tessera-pileup")
        defer { folder.remove() }
        var store = try FileRefreshTokenStore(directory: path)
        var tokens = try await issueFamilies(store, 20, prefix: "u")
        store.close()
        // As if three compactions had each switched logs and died before writing their snapshot.
        for generation in 2...4 {
            try Data(StoreFormat.header(.init(kind: .log, generation: UInt64(generation), createdAt: 0)))
                .write(to: URL(fileURLWithPath: path + "/" + StoreFileName.log(UInt64(generation))))
        }
        store = try FileRefreshTokenStore(directory: path, options: .init(compactionThreshold: 1))
        tokens[0] = try await store.rotate(tokens[0], clientID: "app", scope: nil).successor.token
        // The automatic compaction runs in the background; an explicit one waits its turn.
        var report: FileRefreshTokenStore.CompactionReport?
        while report == nil {
            do { report = try await store.compact() } catch let error as RefreshTokenStoreError where error.message.contains("already running") {
                await Task.yield()
            }
        }
        store.close()
        let files = try storeFiles(path)
        #expect(files.filter { $0.hasPrefix("log.") }.count == 1 && files.filter { $0.hasPrefix("snapshot.") }.count == 1, "\(files)")
        try await expectLive(tokens, reopening: path)
    }
}

@Suite("Ledger arithmetic on hostile records")
struct LedgerArithmeticTests {
    @Test("Fuzz finding: a record whose times are near Int64's ends (valid checksum, crafted values) is replayed and expired without a trap")
    func extremeTimes() {
        var ledger = RefreshTokenLedger()
        for (index, issuedAt) in [Int64.max - 5, Int64.min + 5].enumerated() {
            let key = FamilyKey(high: UInt64(index), low: 7)
            ledger.apply(
                .issue(
                    IssueEntry(
                        key: key, digest: TokenDigest(of: "tsr_\(index)"), clientID: "app", subject: "s", scope: "read", authTime: 0,
                        issuedAt: issuedAt, absoluteExpiry: .max, idleLifetime: .max, retryWindow: -1)))
            ledger.apply(
                .rotate(
                    RotateEntry(
                        key: key, generation: 2, digest: TokenDigest(of: "tsr_\(index)b"), issuedAt: issuedAt,
                        retry: RetryState(previous: TokenDigest(of: "tsr_\(index)"), seed: Array(repeating: 1, count: 32), rotatedAt: issuedAt))))
        }
        #expect(ledger.family(FamilyKey(high: 0, low: 7))?.expiresAt == .max)
        #expect(ledger.forgetExpired(at: 1_800_000_000) == 1)  // the one issued at Int64.min + 5 is long expired
        #expect(ledger.forgetExpired(at: .max) == 1)
    }
}
