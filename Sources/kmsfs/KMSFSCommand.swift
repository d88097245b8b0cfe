import ArgumentParser

/// `kmsfs`: the command-line entry point. Subcommands arrive with their issues (mount, info,
/// fsck, rewrap come next); today: init and the benchmarks.
@main
struct KMSFSCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kmsfs",
        abstract: "A transparent encrypting filesystem with per-file keys wrapped by a KMS.",
        subcommands: [InitCommand.self, MountCommand.self, UmountCommand.self, InfoCommand.self, BenchCommand.self]
    )
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure kmsfs components on this machine.",
        subcommands: [CryptoBenchCommand.self, KMSBenchCommand.self, ClientBenchCommand.self]
    )
}
