import ArgumentParser

@main
struct Tessera: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tessera", abstract: "Tessera OAuth 2.0 token service")
}
