import ArgumentParser
import CLinux
import Foundation
import KMSFSFormat
import KMSFSVolume
#if canImport(Glibc)
import Glibc
#endif

/// `kmsfs name encrypt|decrypt`: translate between a plaintext path and where it is stored, on a
/// volume with encrypted names (for backups, restores and debugging).
struct NameCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "name",
        abstract: "Translate between plaintext paths and backing paths on a volume with encrypted names.",
        subcommands: [Encrypt.self, Decrypt.self])

    struct Encrypt: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print where each path is stored: PATH in a mount (asks the daemon), or CIPHERDIR PATH (unmounted volume).")
        @Argument(help: "A path inside a mount, or the backing directory followed by plaintext paths relative to the volume.")
        var paths: [String]
        @OptionGroup var keyService: KeyServiceFlags

        func run() throws {
            guard let first = paths.first else { throw ValidationError("give a path") }
            if FileManager.default.fileExists(atPath: (first as NSString).appendingPathComponent("kmsfs.conf")) && paths.count > 1 {
                let names = try NameCommand.names(first, keyService)
                for path in paths.dropFirst() {
                    print(String(decoding: try NamePaths.encrypt(Array(path.utf8), cipherDirectory: first, names: names), as: UTF8.self))
                }
                return
            }
            for path in paths {
                var value = [UInt8](repeating: 0, count: 8192)
                let count = getxattr(path, "user.kmsfs.backing-path", &value, value.count)
                guard count >= 0 else { throw CommandFailure("kmsfs name encrypt: \(path): \(String(cString: strerror(errno))) (not in a kmsfs mount, or not yours)") }
                print(String(decoding: value.prefix(count), as: UTF8.self))
            }
        }
    }

    struct Decrypt: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the plaintext path of backing paths of an unmounted volume.")
        @Argument(help: "The volume's backing directory.") var cipherDirectory: String
        @Argument(help: "Paths relative to the backing directory.") var paths: [String]
        @OptionGroup var keyService: KeyServiceFlags

        func run() throws {
            let names = try NameCommand.names(cipherDirectory, keyService)
            for path in paths {
                let plaintext = try NamePaths.decrypt(Array(path.utf8), cipherDirectory: cipherDirectory, names: names)
                FileHandle.standardOutput.write(Data(plaintext + [10]))
            }
        }
    }

    static func names(_ cipherDirectory: String, _ keyService: KeyServiceFlags) throws -> NameCipher {
        let volume = try Volume(cipherDirectory: cipherDirectory, options: keyService.resolved(cipherDirectory: cipherDirectory), pooled: false)
        guard let names = volume.names else { throw CommandFailure("kmsfs name: \(cipherDirectory) keeps names in plaintext") }
        return names
    }
}
