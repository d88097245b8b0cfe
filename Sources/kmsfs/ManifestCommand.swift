import ArgumentParser
import Foundation
import KMSFSCrypto
import KMSFSVolume

/// `kmsfs manifest export|restore`: a volume's key attributes saved apart from it, and put back
/// into a copy that lost them.
struct ManifestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "manifest",
        abstract: "Save every file's key attribute in an authenticated manifest, or put missing ones back from it.",
        discussion: """
        Copies made without extended attributes (rsync -a without -X, tar without --xattrs, most \
        cloud sync tools) keep the files and lose their keys: such files read as EIO. Export a \
        manifest while the attributes are there; after such a copy, restore puts back each \
        missing attribute (and bucket record) whose file is still the same file (same file ID), \
        never over an attribute that is there and differs. The manifest is MACed under a key of \
        the volume's key service: one edited, or made for another volume, is refused whole. Both \
        run on an unmounted volume (they take its lock and ask its key service). Exit status: \
        0 done, 4 restore left conflicts or missing files (listed), 8 nothing could be done.
        """,
        subcommands: [Export.self, Restore.self])

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write the manifest of an unmounted volume.")

        @Argument(help: "The volume's backing directory.") var cipherDirectory: String
        @Option(name: .shortAndLong, help: "Write it here (created 0600; default: standard output).") var output: String?
        @OptionGroup var keyService: KeyServiceFlags

        func run() throws {
            do {
                let volume = try Volume(cipherDirectory: cipherDirectory, options: keyService.resolved(cipherDirectory: cipherDirectory), pooled: false)
                let (manifest, unreadable) = try KeyManifest.export(volume)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                let bytes = Array(try encoder.encode(manifest)) + [0x0a]
                if let output {
                    try ManifestCommand.write(bytes, to: output)
                } else {
                    FileHandle.standardOutput.write(Data(bytes))
                }
                for (path, reason) in unreadable { FileHandle.standardError.write(Data("kmsfs manifest: not saved, no usable key: \(path): \(reason)\n".utf8)) }
                FileHandle.standardError.write(Data("kmsfs manifest: \(manifest.files.count) files, \(manifest.buckets.count) bucket keys\n".utf8))
            } catch {
                FileHandle.standardError.write(Data("kmsfs manifest export: \(error)\n".utf8))
                throw ExitCode(8)
            }
        }
    }

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put back the key attributes a copy of the volume lost.")

        @Argument(help: "The volume's backing directory (unmounted).") var cipherDirectory: String
        @Argument(help: "The manifest (kmsfs manifest export).") var manifest: String
        @OptionGroup var keyService: KeyServiceFlags

        func run() throws {
            let report: KeyManifest.RestoreReport
            do {
                guard let data = FileManager.default.contents(atPath: manifest) else { throw CommandFailure("cannot read \(manifest)") }
                let parsed: KeyManifest
                do { parsed = try JSONDecoder().decode(KeyManifest.self, from: data) } catch { throw CommandFailure("\(manifest) is not a kmsfs key manifest") }
                let volume = try Volume(cipherDirectory: cipherDirectory, options: keyService.resolved(cipherDirectory: cipherDirectory), pooled: false)
                report = try parsed.restore(into: volume)
            } catch {
                FileHandle.standardError.write(Data("kmsfs manifest restore: \(error)\n".utf8))
                throw ExitCode(8)
            }
            for path in report.restored { print("RESTORED \(path)") }
            for path in report.conflicts { print("CONFLICT \(path): it has another key attribute; left as it is") }
            for path in report.missing { print("MISSING \(path): not in the volume, or another file now") }
            for bucket in report.bucketConflicts { print("CONFLICT bucket \(bucket): its record differs; left as it is") }
            print("kmsfs manifest restore: \(report.restored.count) restored, \(report.alreadyThere) already there, "
                  + "\(report.bucketsRestored) bucket keys restored, \(report.directoriesRestored) directory IDs restored, \(report.conflicts.count + report.bucketConflicts.count) conflicts, \(report.missing.count) missing")
            if !report.isClean { throw ExitCode(4) }
        }
    }

    /// Creates `path` with its final mode (0600: it names every file and its wrapped key).
    static func write(_ bytes: [UInt8], to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw SystemCallFailure("create \(path)", errno) }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw SystemCallFailure("write \(path)", errno) }
            done += n
        }
        guard fsync(fd) == 0 else { throw SystemCallFailure("fsync \(path)", errno) }
    }
}
