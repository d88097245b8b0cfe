import ArgumentParser
import Foundation
import KMSFSFuse
import KMSFSVolume

/// `kmsfs init CIPHERDIR`: a new, empty volume.
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a kmsfs volume in an empty backing directory."
    )

    @Argument(help: "The backing directory (created if absent; must be empty).")
    var cipherDirectory: String

    @Option(help: "The KMS key for new files (ID, ARN or alias). Default: a new key on the embedded service.")
    var kmsKey: String?

    @Option(help: "A remote key service (http://, https://, unix://); default: the embedded one.")
    var kmsEndpoint: String?

    @Option(help: "AWS region for a remote key service (else AWS_REGION, the profile, ...).")
    var region: String?

    @Option(help: "AWS profile for a remote key service.")
    var profile: String?

    @Option(help: "Plaintext bytes per chunk: a power of two from 4096 to 1048576.")
    var chunkSize: Int = 16384

    @Option(help: "Where the embedded key store goes (default: CIPHERDIR.keys beside the volume).")
    var keyStore: String?

    func run() throws {
        var options = VolumeInitializer.Options()
        options.keyID = kmsKey
        options.chunkSize = chunkSize
        options.keyStoreDirectory = keyStore
        if kmsEndpoint != nil || profile != nil || region != nil {
            options.remote = .init(endpoint: kmsEndpoint, region: region, profile: profile)
        }
        do {
            let volume = try VolumeInitializer.initialize(cipherDirectory: cipherDirectory, options: options)
            print("volume: \(cipherDirectory) (id \(volume.volumeID), chunk size \(volume.chunkSize))")
            print("default key: \(volume.defaultKeyID)")
            if case let .embedded(embedded) = volume.keyService {
                print("key store: \(embedded.storePath); root key: \(embedded.rootKeyFile)")
                print("back up the key store with the volume: without it no file can be decrypted")
            }
        } catch {
            throw CommandFailure("kmsfs init: \(error)")
        }
    }
}

/// A failure to report as one line (no usage text: the command line was fine).
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// `kmsfs info BACKINGFILE`: the KMS key, encryption context and layout of an encrypted file.
struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Show which KMS key protects a file, like aws s3api head-object (backing files today)."
    )

    @Argument(help: "A backing file of a kmsfs volume.")
    var path: String

    func run() throws {
        do {
            let (_, volume) = try FileInfo.volume(containing: path)
            let info = try FileInfo.read(backingPath: path, volume: volume)
            print("KMS key: \(info.keyARN)")
            print("encryption context: \(info.encryptionContext.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))")
            print("format version: \(info.formatVersion)")
            print("chunk size: \(info.chunkSize)")
            print("plaintext size: \(info.plaintextSize)")
            print("file id: \(info.fileID)")
        } catch {
            throw CommandFailure("kmsfs info: \(error)")
        }
    }
}

/// `kmsfs mount CIPHERDIR MOUNTPOINT`: the plaintext view, in the foreground until unmounted.
struct MountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount a volume in the foreground; unmount with fusermount3 -u or SIGTERM."
    )

    @Argument(help: "The volume's backing directory.") var cipherDirectory: String
    @Argument(help: "Where to mount it.") var mountPoint: String
    @Option(name: .short, help: "Mount options, comma-separated (passed to FUSE).") var options: String?

    func run() throws {
        do {
            try FuseMount.run(cipherDirectory: cipherDirectory, mountPoint: mountPoint,
                              options: options.map { $0.split(separator: ",").map(String.init) } ?? [])
        } catch {
            throw CommandFailure("kmsfs mount: \(error)")
        }
    }
}

/// `kmsfs umount MOUNTPOINT`: unmount (fusermount3 -u), waiting for the daemon to let go.
struct UmountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "umount", abstract: "Unmount a kmsfs mount.")

    @Argument(help: "The mount point.") var mountPoint: String
    @Flag(help: "Detach even if busy (fusermount3 -uz).") var lazy = false

    func run() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["fusermount3", lazy ? "-uz" : "-u", mountPoint]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CommandFailure("kmsfs umount: fusermount3 failed for \(mountPoint)") }
    }
}
