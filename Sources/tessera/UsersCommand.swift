import ArgumentParser
import Foundation
import TesseraIssuer

struct UsersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users",
        abstract: "Manage resource owners who can sign in (DATA/users.json: scrypt, or imported PBKDF2 hashes).",
        subcommands: [Add.self, Remove.self, List.self]
    )

    struct Add: ParsableCommand {
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

        func validate() throws {
            guard passwordStdin != hashStdin else {
                throw ValidationError("give one of --password-stdin or --hash-stdin, with the value on standard input")
            }
        }

        func run() throws {
            let username = try operand.value()
            var secret = readLine(strippingNewline: true) ?? ""
            defer { secret = "" }
            let users = UserStore(dataPath: options.data)
            if hashStdin {
                try clientCall { try users.add(username, passwordHash: secret, now: commandNow()) }
            } else {
                try clientCall { try users.add(username, password: secret, now: commandNow()) }
            }
            print("added \(username)")
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a user (their refresh tokens: `tessera store revoke --subject USERNAME`).")
        @OptionGroup var options: ClientsCommand.DataOptions
        @OptionGroup var operand: UsernameOperand

        func run() throws {
            let username = try operand.value()
            guard try clientCall({ try UserStore(dataPath: options.data).remove(username) }) else { throw CLIError("no user \(username)") }
            print("removed \(username)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List usernames.")
        @OptionGroup var options: ClientsCommand.DataOptions

        func run() throws {
            for user in try clientCall({ try UserStore(dataPath: options.data).users() }) { print(user.username) }
        }
    }
}
