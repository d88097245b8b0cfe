import ArgumentParser
import Foundation
import KMSFSVolume

/// `kmsfs keys`: which KMS keys a volume depends on, with how many files and bytes each wraps —
/// what to check before disabling, deleting or losing access to a key.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "List the KMS keys a volume's files are wrapped under, with file counts and bytes.",
        discussion: """
        Reads the files' key attributes in the backing directory only: no key service is asked \
        (but for --path on an unmounted volume with encrypted names: its name key), and a \
        mounted volume (give its backing directory or its mount point) can be listed too.
        """)

    @Argument(help: "The volume's backing directory, or the mount point of a mounted volume.")
    var volume: String

    @Option(help: "Only files under this directory of the volume (relative to its root).")
    var path: String = ""

    @OptionGroup var keyService: KeyServiceFlags

    func run() throws {
        let cipherDirectory = Self.backingDirectory(of: volume)
        // Names matter only to find --path on a volume that encrypts them.
        let names = path.isEmpty ? ReportNames(subtree: "")
            : try ReportNames.resolve(cipherDirectory: cipherDirectory, subtree: path, keyService: keyService, command: "keys")
        let inventory = try KeyInventory.scan(cipherDirectory: cipherDirectory, under: names.subtree, names: names.cipher)
        Self.printUsage(inventory)
    }

    /// The backing directory of `volume`: itself, or the source of the kmsfs mount there.
    static func backingDirectory(of volume: String) -> String {
        let path = URL(fileURLWithPath: volume).standardizedFileURL.path
        return VolumeLock.mountedVolume(at: path) ?? path
    }

    static func printUsage(_ inventory: KeyInventory) {
        print("FILES\tSTORED BYTES\tKMS KEY")
        for usage in inventory.usage.values.sorted(by: { ($0.files, $1.keyARN) > ($1.files, $0.keyARN) }) {
            print("\(usage.files)\t\(usage.storedBytes)\t\(usage.keyARN)")
        }
        if !inventory.unreadable.isEmpty {
            print("\(inventory.unreadable.count)\t-\t(no usable key attribute: unreadable already; kmsfs fsck lists them)")
        }
    }
}

/// `kmsfs shred-report --key K`: exactly the files that become unreadable when K is disabled or
/// deleted (crypto-shredding), listed before it is done; `kmsfs fsck` confirms it afterwards.
struct ShredReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shred-report",
        abstract: "List the files that become unreadable when a KMS key is disabled or deleted.",
        discussion: """
        Reads the files' key attributes in the backing directory (a mounted volume can be \
        reported on). Name the key by its ARN or key ID, as kmsfs keys prints it. Paths are \
        relative to the volume's root, and plaintext on a volume with encrypted names: a mounted \
        volume's mount translates them (run as root, or as the user who mounted it), an unmounted \
        one's key service gives the name key (as for fsck). A path that was not translated is \
        printed as its backing path, marked so, and standard error says how many.
        """)

    @Argument(help: "The volume's backing directory, or the mount point of a mounted volume.")
    var volume: String

    @Option(help: "The KMS key (ARN or key ID).")
    var key: String

    @Option(help: "Only files under this directory of the volume (relative to its root).")
    var path: String = ""

    @OptionGroup var keyService: KeyServiceFlags

    func validate() throws {
        guard !key.hasPrefix("alias/") else {
            throw ValidationError("name the key by its ARN or key ID (kmsfs keys lists them): an alias can be moved to another key")
        }
    }

    func run() throws {
        var shredded: [String] = []
        let cipherDirectory = KeysCommand.backingDirectory(of: volume)
        var names = try ReportNames.resolve(cipherDirectory: cipherDirectory, subtree: path, keyService: keyService, command: "shred-report")
        let inventory = try KeyInventory.scan(cipherDirectory: cipherDirectory, under: names.subtree, names: names.cipher) { path, info, arn in
            if let arn, KeyInventory.matches(arn, key) { shredded += names.shown(path, info) }
        }
        for path in shredded.sorted() { print(path) }
        names.warnIfIncomplete("shred-report")
        let bytes = inventory.usage.values.filter { KeyInventory.matches($0.keyARN, key) }.reduce(Int64(0)) { $0 + $1.storedBytes }
        FileHandle.standardError.write(Data("""
            kmsfs shred-report: \(shredded.count) of \(inventory.files) files (\(bytes) bytes stored) become unreadable without \(key)\
            \(inventory.unreadable.isEmpty ? "" : "; \(inventory.unreadable.count) are unreadable already")

            """.utf8))
    }
}
