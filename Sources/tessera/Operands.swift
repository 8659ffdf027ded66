import ArgumentParser

// Client ids, usernames and kids may begin with "-" (a kid is a base64url thumbprint: 1 in 64 does). A plain
// `@Argument` reads such a word as short flags, and with an "h" among them ArgumentParser prints the help and
// exits 0: `tessera users remove -hank` would have removed nobody and reported success. These operands take
// every word that is not one of the command's own options, wherever it stands. Their count is checked in
// `run()`, not `validate()`: after a parse or validation error ArgumentParser looks for a help flag again, and
// "-hank" in a wrong command line would again print the help and exit 0.

/// Exactly one operand; otherwise says what was expected and what came, and exits 64 (a usage error).
func singleOperand(_ words: [String], _ what: String) throws -> String {
    guard words.count == 1 else {
        throw usageError(
            words.isEmpty
                ? "name the \(what)"
                : "one \(what) expected, got \(words.map { "'\($0)'" }.joined(separator: " ")) (a misspelt option?)")
    }
    return words[0]
}

/// A usage error found in `run()`: the message on standard error, exit status 64 (as ArgumentParser's own).
func usageError(_ message: String) -> ExitCode {
    printError("Error: \(message)")
    return ExitCode(64)
}

struct ClientIDOperand: ParsableArguments {
    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("The client_id (A–Z a–z 0–9 . _ ~ -).", valueName: "client-id"))
    var words: [String] = []
    func value() throws -> String { try singleOperand(words, "client_id") }
}

struct UsernameOperand: ParsableArguments {
    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("The username.", valueName: "username"))
    var words: [String] = []
    func value() throws -> String { try singleOperand(words, "username") }
}
