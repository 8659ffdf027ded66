import ArgumentParser
import Foundation
import TesseraIssuer

struct UsersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users",
        abstract: "Manage resource owners who can sign in (DATA/users.json, scrypt hashes).",
        subcommands: [Add.self, Remove.self, List.self]
    )

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a user; the password is read from standard input (never an argument: it would show in ps and shell history).")
        @OptionGroup var options: ClientsCommand.DataOptions
        @Argument var username: String
        @Flag(name: .customLong("password-stdin"), help: "Read the password from standard input (required).") var passwordStdin = false

        func run() throws {
            guard passwordStdin else { throw ValidationError("give --password-stdin and the password on standard input") }
            var password = readLine(strippingNewline: true) ?? ""
            defer { password = "" }
            try clientCall { try UserStore(dataPath: options.data).add(username, password: password, now: commandNow()) }
            print("added \(username)")
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a user (their refresh tokens: `tessera store revoke --subject USERNAME`).")
        @OptionGroup var options: ClientsCommand.DataOptions
        @Argument var username: String

        func run() throws {
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
