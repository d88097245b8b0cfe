import ArgumentParser
import Foundation
import KMSFSVolume

/// `kmsfs allow-key CIPHERDIR KEY...`: widens the list of keys directories may name.
struct AllowKeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allow-key",
        abstract: "Allow directories of an unmounted volume to name these keys for their new files (user.kmsfs.key-id).",
        discussion: "The list is part of the volume's sealed configuration: only someone the key service lets unwrap its seal can change it."
    )

    @Argument(help: "The volume's backing directory.") var cipherDirectory: String
    @Argument(help: "Key IDs, ARNs or aliases, exactly as directories will name them.") var keyIDs: [String]
    @OptionGroup var keyService: KeyServiceFlags

    func run() throws {
        do {
            let configuration = try VolumeConfiguration.allowKeys(
                keyIDs, cipherDirectory: cipherDirectory,
                options: keyService.resolved(cipherDirectory: cipherDirectory))
            print("keys directories may name: \(([configuration.defaultKeyID] + configuration.allowedKeyIDs).joined(separator: ", "))")
        } catch {
            throw CommandFailure("kmsfs allow-key: \(error)")
        }
    }
}
