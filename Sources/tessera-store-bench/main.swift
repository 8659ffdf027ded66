// Refresh-token store benchmark (release build):
//   swift run -c release tessera-store-bench [--seconds S] [--families N] [--dir PATH] [--check]
//
// Prints, in one run on the same disk:
//   - the raw cost of write(2)+fdatasync(2) of one record (the floor for one durable write);
//   - rotations per second at 1, 16 and 64 concurrent callers, with fsync on and off, and how many
//     rotations each fsync served (group commit);
//   - start-up time and resident memory of a store holding N live families (default 1,000,000),
//     measured in a fresh child process, and the time to compact it.
// `--check` exits 1 when a target of the issue is missed (≥ 10,000 durable rotations/s at 64 callers;
// start < 2 s and < 250 MB at 1 M families).
import Foundation
import TesseraBenchSupport
import TesseraIssuer

#if canImport(Glibc)
import Glibc
#endif

struct Options {
    var seconds = 3.0
    var families = 1_000_000
    var directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-store-bench-\(getpid())").path
    var check = false
    var openOnly: String?

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--seconds": seconds = Double(iterator.next() ?? "") ?? seconds
            case "--families": families = Int(iterator.next() ?? "") ?? families
            case "--dir": directory = iterator.next() ?? directory
            case "--check": check = true
            case "--open-only": openOnly = iterator.next()
            default:
                print("usage: tessera-store-bench [--seconds S] [--families N] [--dir PATH] [--check]")
                exit(2)
            }
        }
    }
}

/// VmRSS and VmHWM (peak) of this process, in MB.
func residentMemory() -> (current: Double, peak: Double) {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    func field(_ name: String) -> Double {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return 0 }
        return Double(line.split(separator: " ").dropFirst().first ?? "0").map { $0 / 1024 } ?? 0
    }
    return (field("VmRSS"), field("VmHWM"))
}

/// write(2) + fdatasync(2) of a 150-byte record, appended: the raw cost of one durable append.
func rawFsync(in directory: String, seconds: Double) -> Double {
    let path = directory + "/raw-fsync"
    let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0o600)
    defer {
        close(fd)
        unlink(path)
    }
    let record = [UInt8](repeating: 0x5A, count: 150)
    var count = 0
    let start = monotonic()
    while monotonic() - start < seconds {
        _ = record.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        fdatasync(fd)
        count += 1
    }
    return (monotonic() - start) / Double(count)
}

func rotations(directory: String, callers: Int, durability: FileRefreshTokenStore.Options.Durability, seconds: Double) async throws -> Double {
    try? FileManager.default.removeItem(atPath: directory)
    let store = try FileRefreshTokenStore(directory: directory, options: .init(durability: durability))
    defer { store.close() }
    return try await rotations(in: store, callers: callers, seconds: seconds)
}

let options = Options(CommandLine.arguments)

if let path = options.openOnly {
    // Child mode: open the store and report time and memory, nothing else in this process.
    let start = monotonic()
    let store = try FileRefreshTokenStore(directory: path)
    let seconds = monotonic() - start
    let families = await store.statistics().families
    let memory = residentMemory()
    store.close()
    print("\(seconds) \(memory.current) \(memory.peak) \(families)")
    exit(0)
}

let root = options.directory
try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
defer { try? FileManager.default.removeItem(atPath: root) }
var missed: [String] = []

let fsyncSeconds = rawFsync(in: root, seconds: min(options.seconds, 2))
print(
    String(
        format: "raw write+fdatasync of one record: %.0f µs (at most %.0f durable writes/s without group commit)", fsyncSeconds * 1e6,
        1 / fsyncSeconds))
print("\nrotations/s (each caller rotates its own family in a loop; best of alternating rounds)")
print("callers   fsync on   fsync off   rotations per fsync")
for callers in [1, 16, 64] {
    var durable = 0.0
    var unsynced = 0.0
    for _ in 0..<2 {
        durable = max(durable, try await rotations(directory: root + "/rot", callers: callers, durability: .fsync, seconds: options.seconds / 2))
        unsynced = max(
            unsynced, try await rotations(directory: root + "/rot", callers: callers, durability: .unsafeNoSync, seconds: options.seconds / 2))
    }
    print(String(format: "%7d %10.0f %11.0f %12.1f", callers, durable, unsynced, durable * fsyncSeconds))
    if callers == 64, durable < 10_000 { missed.append("64-caller durable rotations \(Int(durable))/s < 10,000") }
}

// A store of N live families: built without fsync (setup only), then compacted into a snapshot.
let big = root + "/big"
print("\nbuilding a store of \(options.families) families ...")
var store = try FileRefreshTokenStore(directory: big, options: .init(durability: .unsafeNoSync, compactionThreshold: Int.max))
let buildStart = monotonic()
try await withThrowingTaskGroup(of: Void.self) { group in
    let perTask = (options.families + 15) / 16
    for task in 0..<16 {
        group.addTask {
            for index in stride(from: task * perTask, to: min(options.families, (task + 1) * perTask), by: 1) {
                _ = try await store.issue(newFamily(index))
            }
        }
    }
    try await group.waitForAll()
}
print(String(format: "issued in %.1f s (%.0f issues/s, fsync off)", monotonic() - buildStart, Double(options.families) / (monotonic() - buildStart)))
let logBytes = await store.statistics().logBytes
store.close()

func openInChild() throws -> (seconds: Double, rss: Double, peak: Double, families: Int) {
    let child = Process()
    child.executableURL = URL(
        fileURLWithPath: CommandLine.arguments[0].hasPrefix("/")
            ? CommandLine.arguments[0]
            : FileManager.default.currentDirectoryPath + "/" + CommandLine.arguments[0])
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { child.executableURL = URL(fileURLWithPath: exe) }
    child.arguments = ["--open-only", big]
    let output = Pipe()
    child.standardOutput = output
    try child.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    child.waitUntilExit()
    let fields = text.split(separator: " ").map { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0 }
    return (fields[0], fields[1], fields[2], Int(fields[3]))
}

let fromLog = try openInChild()
print(
    String(
        format: "start from the log (%.0f MB): %.2f s, resident %.0f MB (peak %.0f MB), %d families",
        Double(logBytes) / 1e6, fromLog.seconds, fromLog.rss, fromLog.peak, fromLog.families))

store = try FileRefreshTokenStore(directory: big)
// Rotations keep going while the compaction runs; the figure shows what they cost it and it them.
async let compaction = store.compact()
let during = try await rotations(in: store, callers: 64, seconds: 1)
let report = try await compaction
let large = try await rotations(in: store, callers: 64, seconds: options.seconds / 2)
store.close()
print(
    String(
        format: "compaction of %d families: %.2f s, snapshot %.0f MB; %.0f durable rotations/s at 64 callers during it",
        report.families, report.seconds, Double(report.snapshotBytes) / 1e6, during))
print(String(format: "durable rotations/s at 64 callers in the store of %d families: %.0f", report.families, large))

let fromSnapshot = try openInChild()
print(
    String(
        format: "start from the snapshot: %.2f s, resident %.0f MB (peak %.0f MB), %d families",
        fromSnapshot.seconds, fromSnapshot.rss, fromSnapshot.peak, fromSnapshot.families))
if options.families >= 1_000_000 {
    for (label, result) in [("log", fromLog), ("snapshot", fromSnapshot)] {
        if result.seconds >= 2 { missed.append("start from the \(label) \(result.seconds) s ≥ 2 s") }
        if result.peak >= 250 { missed.append("start from the \(label) peaks at \(Int(result.peak)) MB ≥ 250 MB") }
    }
}

if options.check, !missed.isEmpty {
    print("\nmissed: " + missed.joined(separator: "; "))
    exit(1)
}
