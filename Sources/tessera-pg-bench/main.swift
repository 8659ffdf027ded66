// PostgreSQL backend benchmark (release build):
//   swift run -c release tessera-pg-bench --database postgres://USER:PASSWORD@HOST:PORT/DB [--seconds S] [--postgres-only]
//
// The role must be allowed to create databases: the run works in a scratch database it creates and drops.
// Prints, in one run against the same server:
//   - pgbench's TPS for a one-row UPDATE transaction (BEGIN; UPDATE …; END; prepared), the raw limit;
//   - durable refresh-token rotations/s of PostgresRefreshTokenStore, and of the file store beside it;
// at 1, 16 and 64 concurrent callers, each rotating its own family in a loop, and the ratio to pgbench.
import Foundation
import TesseraBenchSupport
import TesseraIssuer
import TesseraPostgres

#if canImport(Glibc)
import Glibc
#endif

struct Options {
    var database = ProcessInfo.processInfo.environment["TESSERA_DATABASE"] ?? ""
    var seconds = 5.0
    /// Rotations against PostgreSQL only, at `callers` callers (for a profiler).
    var postgresOnly = false
    var callers = 64

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--database": database = iterator.next() ?? ""
            case "--seconds": seconds = Double(iterator.next() ?? "") ?? seconds
            case "--postgres-only": postgresOnly = true
            case "--callers": callers = Int(iterator.next() ?? "") ?? callers
            default:
                print("usage: tessera-pg-bench --database postgres://USER:PASSWORD@HOST:PORT/DB [--seconds S] [--postgres-only [--callers N]]")
                exit(2)
            }
        }
        guard !database.isEmpty else {
            print("tessera-pg-bench: give --database (a role that may create databases) or set TESSERA_DATABASE")
            exit(2)
        }
    }
}

/// pgbench's TPS for one prepared one-row UPDATE per transaction, `clients` connections.
func pgbench(_ url: DatabaseURL, clients: Int, seconds: Double, script: String) throws -> Double {
    let arguments =
        ["-n", "-M", "prepared", "-c", "\(clients)", "-j", "\(min(clients, 2))", "-T", "\(Int(seconds.rounded(.up)))", "-f", script]
        + connectionArguments(url)
    let text = try run("pgbench", arguments, password: url.password)
    guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
        let tps = Double(line.dropFirst(6).prefix { $0 != " " })
    else { throw BenchError("pgbench printed no tps: \(text.suffix(300))") }
    return tps
}

/// Runs a program found on PATH and returns its standard output. Spawned with an empty signal mask:
/// Foundation's `Process` passes on a mask that blocks SIGALRM, and pgbench's `-T` ends on that alarm (it
/// never stopped when started through `Process`).
func run(_ program: String, _ arguments: [String], password: String?) throws -> String {
    var pipeEnds: [Int32] = [0, 0]
    guard pipe(&pipeEnds) == 0 else { throw BenchError("pipe: errno \(errno)") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
    posix_spawn_file_actions_addclose(&actions, pipeEnds[0])
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attributes, &empty)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
    var environment = ProcessInfo.processInfo.environment
    if let password { environment["PGPASSWORD"] = password }
    let argv = ([program] + arguments).map { strdup($0) } + [nil]
    let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { for pointer in argv + envp { free(pointer) } }
    var child: pid_t = 0
    let spawned = posix_spawnp(&child, program, &actions, &attributes, argv, envp)
    close(pipeEnds[1])
    guard spawned == 0 else {
        close(pipeEnds[0])
        throw BenchError("cannot start \(program): error \(spawned)")
    }
    let output = FileHandle(fileDescriptor: pipeEnds[0], closeOnDealloc: true).readDataToEndOfFile()
    var status: Int32 = 0
    waitpid(child, &status, 0)
    return String(decoding: output, as: UTF8.self)
}

func connectionArguments(_ url: DatabaseURL) -> [String] {
    ["-h", url.socketFolder ?? url.host, "-p", "\(url.port)", "-U", url.username, url.database]
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

let options = Options(CommandLine.arguments)
let admin = try DatabaseURL(options.database)
let adminPool = try PostgresDatabase(url: admin)
try await adminPool.probe()
let scratch = "tessera_bench_\(getpid())"
try await adminPool.execute("DROP DATABASE IF EXISTS \(scratch)")
try await adminPool.execute("CREATE DATABASE \(scratch)")
var url = admin
url.database = scratch
let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-pg-bench-\(getpid())").path
defer { try? FileManager.default.removeItem(atPath: folder) }

do {
    // pgbench's tables, scale 1 (100,000 accounts), and the one-row update transaction.
    _ = try run("pgbench", ["-i", "-q", "-s", "1"] + connectionArguments(url), password: url.password)
    let script = folder + "-update.sql"
    try "\\set aid random(1, 100000)\nBEGIN;\nUPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;\nEND;\n"
        .write(toFile: script, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: script) }

    var pgOptions = PostgresDatabase.Options()
    pgOptions.maximumConnections = 64
    let pool = try PostgresDatabase(url: url, options: pgOptions)
    try await Schema.migrate(pool)
    let store = PostgresRefreshTokenStore(database: pool)
    let settings = try await pool.strings("SELECT current_setting('synchronous_commit') || ' ' || current_setting('fsync')")
    print("server: \(try await pool.strings("SHOW server_version").first ?? "?"); synchronous_commit, fsync: \(settings.first ?? "?")")
    print("\ncallers   pgbench tps   postgres rotations/s   ratio   file store rotations/s (fsync on)")
    if options.postgresOnly {
        let rate = try await rotations(in: store, callers: options.callers, seconds: options.seconds)
        print(String(format: "%d callers: %.0f rotations/s", options.callers, rate))
    }
    for callers in options.postgresOnly ? [] : [1, 16, 64] {
        let raw = try pgbench(url, clients: callers, seconds: options.seconds, script: script)
        let database = try await rotations(in: store, callers: callers, seconds: options.seconds)
        try? FileManager.default.removeItem(atPath: folder)
        let file = try FileRefreshTokenStore(directory: folder)
        let local = try await rotations(in: file, callers: callers, seconds: options.seconds)
        file.close()
        print(String(format: "%7d %13.0f %22.0f %7.2f %24.0f", callers, raw, database, database / raw, local))
    }
    await pool.close()
} catch {
    print("tessera-pg-bench: \(error)")
    try? await adminPool.execute("DROP DATABASE IF EXISTS \(scratch) WITH (FORCE)")
    exit(1)
}
try await adminPool.execute("DROP DATABASE IF EXISTS \(scratch) WITH (FORCE)")
await adminPool.close()
