import ArgumentParser
import Foundation
import KMSClient
import KMSFSCrypto
import KMSFSVolume

/// `kmsfs fsck CIPHERDIR`: which files of a volume, and which byte ranges of them, read as EIO —
/// what an operator needs after a crash (docs/FORMAT.md, "Crashes" says what one can tear) or a
/// suspected tampering. Read-only; the exit status follows fsck(8).
struct FsckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fsck",
        abstract: "Check that every file of an unmounted volume decrypts; list what does not.",
        discussion: """
        Reads every file of the backing directory as a mount would, authenticating each chunk, and \
        prints a line per file that is UNREADABLE (no usable key, header or size) or DAMAGED (the \
        plaintext byte ranges whose reads fail). Nothing is changed. Run it on an unmounted volume: \
        files being written meanwhile can look torn (an embedded key store refuses while mounted). \
        Exit status: 0 every file reads whole, 4 damage found and left as it is, 8 the check could \
        not be done (not a volume, key service unreachable).
        """)

    @Argument(help: "The volume's backing directory.")
    var cipherDirectory: String

    @Flag(help: "Also list holes: ranges stored as zeros, which read as zeros without authentication (sparse volumes).")
    var holes = false

    @OptionGroup var keyService: KeyServiceFlags

    func run() throws {
        // Data keys and chunk plaintext pass through this process as through a mount.
        do { try ProcessHardening.disableCoreDumps() } catch { throw CommandFailure("kmsfs fsck: \(error)") }
        MountCommand.lockKeyMemory(announce: false)
        let report: VolumeCheck.Report
        do {
            // The same lock and configuration check as a mount: never beside a mount.
            let volume = try Volume(cipherDirectory: cipherDirectory,
                                    options: keyService.resolved(cipherDirectory: cipherDirectory),
                                    pooled: false)
            // Findings name plaintext paths (the backing paths are `kmsfs name encrypt`'s).
            report = try VolumeCheck(cipherDirectory: cipherDirectory, keys: volume.keys, holes: volume.holes, names: volume.names).run()
        } catch {
            FileHandle.standardError.write(Data("kmsfs fsck: \(error)\n".utf8))
            throw ExitCode(8)
        }
        var unreadable = 0, damaged = 0, withHoles = 0
        for finding in report.findings {
            switch finding {
            case .unreadable: unreadable += 1
            case .damaged: damaged += 1
            case .holes:
                withHoles += 1
                if !holes { continue }
            }
            print(finding)
        }
        print("kmsfs fsck: \(report.filesChecked) files checked: \(unreadable) unreadable, \(damaged) damaged, \(withHoles) with holes")
        if !report.isClean { throw ExitCode(4) }
    }
}
