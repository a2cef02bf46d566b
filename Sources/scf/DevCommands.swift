import ArgumentParser

/// Developer and test tooling (hidden from --help).
struct Dev: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Developer tools: generate chains for tests and benchmarks.",
        shouldDisplay: false,
        subcommands: []
    )
}
