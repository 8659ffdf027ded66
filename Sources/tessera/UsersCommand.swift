import ArgumentParser
import Foundation
import TesseraIssuer

struct UsersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users",
        abstract: "Manage resource owners who can sign in (DATA/users.json, or the --database: scrypt, or imported PBKDF2 hashes).",
        subcommands: [Add.self, Set.self, Show.self, Remove.self, List.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a user; the password is read from standard input (never an argument: it would show in ps and shell history).")
        @OptionGroup var options: ClientsCommand.DataOptions
        @OptionGroup var operand: UsernameOperand
        @Flag(name: .customLong("password-stdin"), help: "Read the password from standard input.") var passwordStdin = false
        @Flag(
            name: .customLong("hash-stdin"),
            help:
                "Read an existing hash from standard input (a migration): scrypt$… as Tessera writes it, or Django's pbkdf2_sha256$iterations$salt$hash."
        )
        var hashStdin = false
        @Option(
            name: .customLong("claim"),
            help:
                "A standard claim, NAME=VALUE (repeatable): email=alice@example.com, email_verified=true, name=\"Alice Liddell\", address.locality=Oxford …"
        )
        var claims: [String] = []

        func validate() throws {
            guard passwordStdin != hashStdin else {
                throw ValidationError("give one of --password-stdin or --hash-stdin, with the value on standard input")
            }
        }

        func run() async throws {
            let username = try operand.value()
            var secret = readLine(strippingNewline: true) ?? ""
            defer { secret = "" }
            let (password, isHash) = (secret, hashStdin)
            try await options.withState { state in
                if isHash {
                    try await state.users.add(username, passwordHash: password, claims: claims, now: commandNow())
                } else {
                    try await state.users.add(username, password: password, claims: claims, now: commandNow())
                }
            }
            print("added \(username)")
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set or remove a user's claims (OpenID Connect Core §5.1); updated_at becomes now.",
            discussion: "An empty value removes the claim: --claim name= . Booleans are true or false; address members are address.MEMBER.")
        @OptionGroup var options: ClientsCommand.DataOptions
        @OptionGroup var operand: UsernameOperand
        @Option(name: .customLong("claim"), help: "NAME=VALUE (repeatable).") var claims: [String] = []

        func validate() throws {
            guard !claims.isEmpty else { throw ValidationError("give at least one --claim NAME=VALUE") }
        }

        func run() async throws {
            let username = try operand.value()
            _ = try await options.withState { state in try await state.users.set(username, claims: claims, now: commandNow()) }
            print("updated \(username)")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a user: sub, creation time and claims (never the password hash).")
        @OptionGroup var options: ClientsCommand.DataOptions
        @OptionGroup var operand: UsernameOperand
        @Flag(help: "Print as JSON.") var json = false

        func run() async throws {
            let username = try operand.value()
            guard let user = try await options.withState({ state in try await state.users.users().named(username) }) else {
                throw CLIError("no user \(username)")
            }
            let created = ISO8601DateFormatter().string(from: user.created)
            if json {
                try printJSON([
                    "username": user.username, "sub": user.subject, "created": created,
                    "claims": user.releasedClaims(StandardClaims.names).jsonString.data(using: .utf8).flatMap {
                        try? JSONSerialization.jsonObject(with: $0)
                    }
                        ?? [:],
                ])
                return
            }
            print("username: \(user.username)")
            print("sub: \(user.subject)")
            print("created: \(created)")
            for name in StandardClaims.names.sorted() {
                if let value = user.claims[name] { print("\(name): \(value.text)") }
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Remove a user: their sessions, refresh tokens and UserInfo stop working at once; their sub is never given to anyone again.")
        @OptionGroup var options: ClientsCommand.DataOptions
        @OptionGroup var operand: UsernameOperand

        func run() async throws {
            let username = try operand.value()
            guard try await options.withState({ state in try await state.users.remove(username) }) else { throw CLIError("no user \(username)") }
            print("removed \(username)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List usernames.")
        @OptionGroup var options: ClientsCommand.DataOptions

        func run() async throws {
            for user in try await options.withState({ state in try await state.users.users() }) { print(user.username) }
        }
    }
}
