import ArgumentParser

/// `kmsfs`: the command-line entry point. Mount is the default subcommand, so that
/// `kmsfs CIPHERDIR MNT -o OPTS` (the form mount.fuse3 runs for `mount -t fuse.kmsfs`) mounts.
@main
struct KMSFSCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kmsfs",
        abstract: "A transparent encrypting filesystem with per-file keys wrapped by a KMS.",
        subcommands: [InitCommand.self, MountCommand.self, AllowKeyCommand.self, ProtectCommand.self, UmountCommand.self, InfoCommand.self, FsckCommand.self,
                      KeysCommand.self, ShredReportCommand.self, RewrapCommand.self, RekeyCommand.self, ManifestCommand.self, NameCommand.self, StatusCommand.self, BenchCommand.self],
        defaultSubcommand: MountCommand.self
    )
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure kmsfs components on this machine.",
        subcommands: [CryptoBenchCommand.self, KMSBenchCommand.self, ClientBenchCommand.self]
    )
}
