import ArgumentParser
import Foundation
import TesseraIssuer
import TesseraJOSE
import TesseraPostgres

/// The time the CLI acts at: the system clock, or `TESSERA_NOW` (Unix seconds) so drills and tests can run a
/// whole rotation cycle without waiting (`keys/README.md`). Whenever it is not the system clock, stderr says
/// so once, with what it risks: a clock ahead of real time activates keys before verifiers have fetched
/// them, as `--force` does.
func commandNow() -> Date {
    guard let text = ProcessInfo.processInfo.environment["TESSERA_NOW"], let seconds = Double(text) else { return Date() }
    let now = Date(timeIntervalSince1970: seconds)
    clockWarning.warnOnce(now)
    return now
}

private let clockWarning = ClockWarning()

private final class ClockWarning: @unchecked Sendable {
    private let lock = NSLock()
    private var warned = false

    func warnOnce(_ now: Date) {
        let first = lock.withLock {
            defer { warned = true }
            return !warned
        }
        guard first else { return }
        let ahead = now.timeIntervalSinceNow
        let risk =
            ahead > 1
            ? "; it is \(Int(ahead)) s ahead of the system clock, so a rotation may activate a key before verifiers have fetched it (like --force)"
            : ""
        printError("warning: TESSERA_NOW is set: acting at \(iso(now)), not the system clock\(risk)")
    }
}

func keyStoreCall<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as KeyStoreError { throw CLIError(Hint.message(error)) } catch let error as JOSEError {
        throw CLIError(error.message)
    }
}

func iso(_ date: Date?) -> String { date.map { ISO8601DateFormatter().string(from: $0) } ?? "-" }

/// Parses `30d`, `12h`, `90m`, `45s` or plain seconds.
struct Duration: ExpressibleByArgument {
    let seconds: TimeInterval
    init?(argument: String) {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3_600, "d": 86_400]
        if let unit = argument.last.flatMap({ units[$0] }), let value = Double(argument.dropLast()), value >= 0 {
            seconds = value * unit
        } else if let value = Double(argument), value >= 0 {
            seconds = value
        } else {
            return nil
        }
    }
}

struct KeysOptions: ParsableArguments {
    @Option(name: .customLong("keys"), help: "The key folder.")
    var path = "keys"

    @OptionGroup var database: DatabaseOption

    @Option(
        name: .customLong("key-encryption-key-file"),
        help: "With --database: the key file that seals the private keys (default: $TESSERA_KEY_ENCRYPTION_KEY_FILE).")
    var keyEncryptionKeyFile: String?

    var store: KeyStore { KeyStore(path: path) }
}

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Manage the signing key ring: generate, list, rotate without downtime, revoke, prune, publish.",
        subcommands: [Generate.self, List.self, Rotate.self, Revoke.self, Prune.self, JWKS.self, Policy.self, NewKEK.self, Rewrap.self]
    )

    struct Rewrap: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-seal every private key of the database's key ring under a new key-encryption key, in one transaction.",
            discussion: """
                All keys move or none does: a failure, or the process killed part-way, leaves every key under the old \
                key. Then give every instance the new key file (and keep the old one until they all run with it).
                """)

        @OptionGroup var keys: KeysOptions
        @Option(name: .customLong("new-key-encryption-key-file"), help: "The new key file (tessera keys new-kek --out FILE).") var newFile: String

        func run() async throws {
            guard keys.database.resolved != nil else { throw CLIError("rewrap is for a key ring in a database: give --database URL") }
            let newKEK = try keyStoreCall { try KeyEncryptionKey(file: newFile) }
            let count = try await keys.withDatabaseRing { ring in try await ring.rewrap(to: newKEK) }
            print("re-sealed \(count) key\(count == 1 ? "" : "s") under key-encryption key \(newKEK.id)")
        }
    }

    struct NewKEK: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "new-kek",
            abstract: "Create a key-encryption key: 32 random bytes in a new file, mode 0600, never overwriting one.",
            discussion: """
                It encrypts signing keys kept in a database (AES-256-GCM) and must never be stored beside them: keep it \
                on each instance's disk or in a secret store, and back it up apart from the database.
                """)

        @Option(help: "The file to create.") var out: String

        func run() throws {
            let key = try keyStoreCall { try KeyEncryptionKey.create(at: out) }
            print("created \(out) (key-encryption key \(key.id))")
        }
    }

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate a key (pending: published, not yet signing) and print its kid.",
            discussion: "--activate makes it sign at once, allowed only when no key of its algorithm is active (the first key)."
        )

        @OptionGroup var keys: KeysOptions
        @Option(help: "The algorithm the key is for.") var alg: JWSAlgorithm
        @Flag(help: "Activate at once (only when no key of this algorithm is active).") var activate = false

        func run() async throws {
            if alg.isSymmetric {
                printError(
                    "warning: an \(alg.name) key is a shared secret: it is never published in the JWKS, and every verifier given it can also mint tokens"
                )
            }
            if keys.database.resolved == nil, let formerMode = try keyStoreCall({ try keys.store.tightenIfHoldingNoKeys() }) {
                printError("\(keys.store.path) held no key yet and was mode \(String(formerMode, radix: 8)): made it private (chmod 700)")
            }
            let (alg, activate, now) = (alg, activate, commandNow())
            let (entry, ring) = try await keys.withRing { access in
                let entry = try await access.update(create: true) { ring, adder in
                    try adder.addGeneratedKey(alg, activate: activate, now: now, to: &ring)
                }
                return (entry, try await access.read())
            }
            print(entry.kid)
            if !activate {
                printError(
                    "pending: published now; `tessera keys rotate --alg \(alg.name)` may activate it from \(iso(entry.created + TimeInterval(ring.policy.publishDelay)))"
                )
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every key: kid, algorithm, state, dates.")

        @OptionGroup var keys: KeysOptions
        @Flag(help: "Print the manifest's keys as JSON.") var json = false

        func run() async throws {
            let ring = try await keys.withRing { try await $0.read() }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                encoder.dateEncodingStrategy = .iso8601
                print(String(decoding: try encoder.encode(ring.keys), as: UTF8.self))
                return
            }
            printTable(
                ["KID", "ALG", "STATE", "CREATED", "ACTIVATED", "REMOVE AFTER"],
                ring.keys.map {
                    [$0.kid, $0.alg, $0.state.rawValue, iso($0.created), iso($0.activated), iso($0.removeAfter)]
                })
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Activate the newest pending key published long enough; retire the active one.",
            discussion: """
                The publish delay is the JWKS max-age plus clock skew (the manifest's policy): every verifier has \
                fetched the new key before it signs. The retired key stays published for the longest access-token \
                lifetime plus skew, then `tessera keys prune` removes it. Without a pending key, one is generated \
                and the time a rotate is allowed is printed. Exit status 0 when rotated or nothing was due, 3 when \
                the rotation has to wait.
                """
        )

        @OptionGroup var keys: KeysOptions
        @Option(help: "The algorithm whose key rotates (default: every algorithm in use, each when due).") var alg: JWSAlgorithm?
        @Flag(help: "Skip the publish delay: verifiers that cached the JWKS reject the new key's tokens until they refetch.") var force = false
        @Option(name: .customLong("if-older-than"), help: "Do nothing unless the active key is older than this (e.g. 30d).") var ifOlderThan:
            Duration?

        func run() async throws {
            let now = commandNow()
            let (alg, force, ifOlderThan) = (alg, force, ifOlderThan?.seconds)
            // Without --alg, every algorithm in use rotates when due, in one change of the manifest (the cron
            // form keeps working once a second algorithm is added).
            let outcomes: [(JWSAlgorithm, KeyRotationDecision, KeyRingEntry?)] = try await keys.withRing { access in
                try await access.update(create: false) { ring, writer in
                    try (alg.map { [$0] } ?? Self.algorithmsInUse(ring)).map { algorithm in
                        var decision = ring.rotate(algorithm, now: now, force: force, ifOlderThan: ifOlderThan)
                        var generated: KeyRingEntry?
                        if decision == .needsPendingKey {
                            generated = try writer.addGeneratedKey(algorithm, activate: false, now: now, to: &ring)
                            decision = ring.rotate(algorithm, now: now, force: force, ifOlderThan: ifOlderThan)
                        }
                        return (algorithm, decision, generated)
                    }
                }
            }
            var mustWait = false
            for (algorithm, decision, generated) in outcomes {
                let label = outcomes.count > 1 ? "\(algorithm.name) " : ""
                if let generated { printError("\(label)generated pending key \(generated.kid)") }
                switch decision {
                case .rotated(let active, let retired):
                    if force {
                        printError(
                            "warning: --force activated \(active.kid) without the publish delay; verifiers holding a cached JWKS reject its tokens until they refetch (at most the JWKS max-age)"
                        )
                    }
                    print("\(label)active: \(active.kid)")
                    if let retired {
                        print("\(label)retiring: \(retired.kid) (published until \(iso(retired.removeAfter)), then `tessera keys prune`)")
                    }
                case .waiting(let pending, let allowedAt):
                    printError("\(label)\(pending.kid) is published but not yet long enough: rotate at or after \(iso(allowedAt)) (or --force)")
                    mustWait = true
                case .notDue(let active, let dueAt):
                    print("\(label)not due: \(active.kid) is active until \(iso(dueAt))")
                case .needsPendingKey:
                    throw CLIError("no pending \(algorithm.name) key could be prepared")
                }
            }
            if mustWait { throw ExitCode(3) }
        }

        /// The algorithms with an active or pending key, in a stable order.
        static func algorithmsInUse(_ ring: KeyRing) throws -> [JWSAlgorithm] {
            let inUse = Set(ring.keys.filter { $0.state == .active || $0.state == .pending }.map(\.alg)).sorted()
            guard !inUse.isEmpty else { throw CLIError("the key ring has no active or pending key; give --alg") }
            return inUse.compactMap(JWSAlgorithm.init(name:))
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Withdraw keys at once (compromise): out of the JWKS, never sign again, files deleted.",
            discussion: "A kid is a base64url thumbprint and may begin with '-'; it is still taken as a kid, not an option.")

        @OptionGroup var keys: KeysOptions
        // Every word that is not one of this command's options is a kid (see Operands.swift).
        @Argument(parsing: .allUnrecognized, help: ArgumentHelp("The kid(s) to revoke.", valueName: "kid")) var kids: [String] = []

        func run() async throws {
            guard !kids.isEmpty else { throw usageError("name the kid to revoke (`tessera keys list` shows them)") }
            let (now, kids) = (commandNow(), kids)
            let (entries, ring) = try await keys.withRing { access in
                // All or none: one manifest write revokes every named kid, or an unknown kid changes nothing.
                let entries = try await access.update(create: false) { ring, _ in try kids.map { try ring.revoke($0, now: now) } }
                // The manifest no longer names a usable key: delete its material once that is durable.
                try await access.removeLeftovers(entries)
                return (entries, try? await access.read())
            }
            for kid in kids {
                print("revoked \(kid): removed from the JWKS; tokens it signed stop verifying when verifiers refresh their keys")
            }
            for algorithm in Set(entries.compactMap(\.algorithm)).sorted(by: { $0.name < $1.name }) where ring?.active(algorithm) == nil {
                printError("warning: no \(algorithm.name) key is active now; run `tessera keys rotate --alg \(algorithm.name) --force`")
            }
        }
    }

    struct Prune: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove retiring keys whose tokens have all expired, and their files.")

        @OptionGroup var keys: KeysOptions

        func run() async throws {
            let now = commandNow()
            let (removed, left) = try await keys.withRing { access in
                let gone = try await access.update(create: false) { ring, _ in ring.prune(now: now) }
                // Files go after the manifest stops naming them; orphans from an earlier crash go too.
                try await access.removeLeftovers(gone)
                return (gone, try await access.read())
            }
            for entry in removed { print("removed \(entry.kid)") }
            // What is left to prune later, so an operator knows when to come back.
            let waiting = left.keys.filter { $0.state == .retiring }
                .sorted { ($0.removeAfter ?? .distantFuture) < ($1.removeAfter ?? .distantFuture) }
            if removed.isEmpty { print(waiting.isEmpty ? "nothing to prune: no key is retiring" : "nothing to prune yet") }
            for entry in waiting {
                print("\(entry.kid) (retiring) may be pruned from \(iso(entry.removeAfter)), when every token it signed has expired")
            }
        }
    }

    struct JWKS: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the public JWK Set exactly as the server publishes it.")

        @OptionGroup var keys: KeysOptions

        func run() async throws {
            let jwks = try await keys.withRing { access in try await access.publishedJWKS(try await access.read()) }
            print(jwks.jsonString)
        }
    }
}
