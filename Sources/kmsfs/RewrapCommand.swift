import ArgumentParser
import CLinux
import Dispatch
import Foundation
import KMSClient
import KMSFSCrypto
import KMSFSVolume
import Synchronization

/// `kmsfs rewrap`: every file's data key wrapped under another KMS key, by ReEncrypt — the
/// plaintext keys never leave the key service and no file's contents are read or written. What
/// envelope encryption is for: retiring a KMS key, or moving a volume to another key service
/// account, in the time it takes to rewrite one small attribute per file.
struct RewrapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rewrap",
        abstract: "Re-wrap the data keys of a volume's files under another KMS key (contents untouched).",
        discussion: """
        On an unmounted volume (CIPHERDIR), kmsfs takes the volume's lock and calls the key \
        service itself. On a mounted one (its MOUNTPOINT), the mount's daemon does each file \
        (attribute user.kmsfs.rewrap), beside the volume's readers and writers; only the files' \
        owners (or root) may. Either way each file's key attribute is replaced in one step, so \
        an interrupted run is finished by running it again: files already under the key are \
        skipped. The destination must be a key the volume allows (kmsfs allow-key). Every \
        ReEncrypt is in the key service's audit trail. Exit status: 0 done, 4 some files could \
        not be re-wrapped (listed), 8 nothing could be done.
        """)

    @Argument(help: "The volume's backing directory (unmounted), or the mount point of a mounted volume.")
    var volume: String

    @Option(name: .customLong("to"), help: "The KMS key to wrap the data keys under (ID, ARN or alias).")
    var destination: String?

    @Option(name: .customLong("from"), help: "Only files wrapped under this key (repeatable; default: every key but the destination).")
    var sources: [String] = []

    @Option(help: "Only files under this directory of the volume (relative to its root).")
    var path: String = ""

    @Flag(help: "Count the files per key and what would be re-wrapped; change nothing.")
    var dryRun = false

    @Option(help: "Files re-wrapped at once (key service calls in flight).")
    var jobs = 16

    @OptionGroup var keyService: KeyServiceFlags

    func validate() throws {
        guard dryRun || destination != nil else { throw ValidationError("--to KEY is required (or --dry-run)") }
        guard (1...256).contains(jobs) else { throw ValidationError("--jobs must be 1 to 256") }
        guard !path.split(separator: "/").contains("..") else { throw ValidationError("--path must stay inside the volume") }
    }

    func run() throws {
        let target = URL(fileURLWithPath: volume).standardizedFileURL.path
        let mounted = VolumeLock.mountedVolume(at: target)
        do {
            if dryRun { return try plan(cipherDirectory: mounted ?? target) }
            if let mounted, (try? VolumeConfiguration.load(cipherDirectory: mounted))?.bucketKeys != nil {
                throw CommandFailure("the volume uses bucket keys: its buckets are re-wrapped unmounted (kmsfs umount \(target); kmsfs rewrap \(mounted) --to ...)")
            }
            let outcome = try mounted == nil ? offline(cipherDirectory: target) : online(mountPoint: target)
            print(outcome.summary)
            for (path, reason) in outcome.failures.sorted(by: { $0.0 < $1.0 }) { print("FAILED \(path): \(reason)") }
            if !outcome.failures.isEmpty { throw ExitCode(4) }
        } catch let error as ExitCode {
            throw error
        } catch {
            FileHandle.standardError.write(Data("kmsfs rewrap: \(error)\n".utf8))
            throw ExitCode(8)
        }
    }

    /// What each key wraps, and how many files a run would re-wrap (by ARN or key ID; aliases
    /// are resolved only by a real run).
    private func plan(cipherDirectory: String) throws {
        let inventory = try KeyInventory.scan(cipherDirectory: cipherDirectory, under: path)
        KeysCommand.printUsage(inventory)
        guard let destination else { return }
        let selected = inventory.usage.values.filter { usage in
            !KeyInventory.matches(usage.keyARN, destination)
                && (sources.isEmpty || sources.contains { KeyInventory.matches(usage.keyARN, $0) })
        }
        print("would re-wrap \(selected.reduce(0) { $0 + $1.files }) files under \(destination)"
              + (destination.hasPrefix("alias/") ? " (less any already under the key the alias names)" : ""))
    }

    struct Outcome {
        var rewrapped = 0, already = 0, notSelected = 0
        var failures: [(String, String)] = []
        /// "files", or "bucket keys" on a volume with bucket keys.
        var unit = "files"
        var summary: String {
            "kmsfs rewrap: \(rewrapped) re-wrapped, \(already) already under the key, \(notSelected) under other keys (not selected), \(failures.count) failed (\(unit))"
        }
    }

    /// Unmounted: this process holds the volume's lock and calls the key service.
    private func offline(cipherDirectory: String) throws -> Outcome {
        // Key service credentials pass through this process as through a mount.
        try ProcessHardening.disableCoreDumps()
        let volume = try Volume(cipherDirectory: cipherDirectory, options: keyService.resolved(cipherDirectory: cipherDirectory), pooled: false)
        let destination = self.destination!
        guard let destinationARN = try volume.allowedKeyARN(destination) else {
            throw CommandFailure("\(destination) is not a key this volume allows: kmsfs allow-key \(cipherDirectory) \(destination) first")
        }
        let sourceARNs = try Set(sources.map { try volume.keys.keyARN($0) })
        if let buckets = volume.keys.buckets {
            // Every file of a bucket shares its key: the bucket is the unit, the whole volume the scope.
            guard path.isEmpty else {
                throw CommandFailure("the volume uses bucket keys, which files under --path share with files elsewhere: re-wrap the whole volume")
            }
            let bucketIDs = try BucketKeys.bucketIDs(cipherDirectory: cipherDirectory)
            var outcome = try inParallel(bucketIDs.map { hex($0) }) { name in
                try buckets.rewrap(bucketID: BucketKeys.unhex(name)!, to: destinationARN) { sourceARNs.isEmpty || sourceARNs.contains($0) }
            }
            outcome.unit = "bucket keys"
            return outcome
        }
        var paths: [String] = []
        try VolumeFiles.forEachFile(in: cipherDirectory, under: path) { path, _ in paths.append(path) }
        return try inParallel(paths) { path in
            let fd = open(cipherDirectory + "/" + path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else { throw SystemCallFailure("open", errno) }
            defer { close(fd) }
            return try volume.keys.rewrap(fd: fd, to: destinationARN) { sourceARNs.isEmpty || sourceARNs.contains($0) }
        }
    }

    /// Mounted: the daemon re-wraps each file when asked through its attribute; which key a file
    /// has comes from the mount's `user.kmsfs.info`.
    private func online(mountPoint: String) throws -> Outcome {
        let destination = self.destination!
        let root = path.isEmpty ? mountPoint : mountPoint + "/" + path
        var paths: [String] = []
        try walkMount(root) { paths.append($0) }
        return try inParallel(paths) { path in
            let current = try Self.keyARN(ofMounted: path)
            if KeyInventory.matches(current, destination) { return .alreadyThere }
            guard sources.isEmpty || sources.contains(where: { KeyInventory.matches(current, $0) }) else { return .notSelected(keyARN: current) }
            guard setxattr(path, "user.kmsfs.rewrap", destination, destination.utf8.count, 0) == 0 else {
                let error = errno
                if error == EKEYREJECTED {
                    throw CommandFailure("the mount refuses \(destination): not a key this volume allows (kmsfs allow-key)")
                }
                throw SystemCallFailure("re-wrap", error)
            }
            return .rewrapped(from: current)
        }
    }

    static func keyARN(ofMounted path: String) throws -> String {
        var value = [UInt8](repeating: 0, count: 4096)
        let count = getxattr(path, "user.kmsfs.info", &value, value.count)
        guard count >= 0 else { throw SystemCallFailure("user.kmsfs.info", errno) }
        let line = String(decoding: value[0..<count], as: UTF8.self).split(separator: "\n").first { $0.hasPrefix("KMS key: ") }
        guard let line else { throw SystemCallFailure("user.kmsfs.info names no key", EIO) }
        return String(line.dropFirst("KMS key: ".count))
    }

    private func walkMount(_ directory: String, _ body: (String) -> Void) throws {
        var info = stat()
        guard lstat(directory, &info) == 0 else { throw SystemCallFailure(directory, errno) }
        if info.st_mode & S_IFMT == S_IFREG { return body(directory) }
        for name in try FileManager.default.contentsOfDirectory(atPath: directory).sorted() {
            let path = directory + "/" + name
            guard lstat(path, &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFDIR: try walkMount(path, body)
            case S_IFREG: body(path)
            default: continue
            }
        }
    }

    /// Runs `work` on every path with `jobs` workers and a progress line. A failure that says the
    /// key service cannot be reached, or that the destination is refused, stops the run (every
    /// other file would fail the same way); anything else is that file's failure.
    private func inParallel(_ paths: [String], _ work: @escaping @Sendable (String) throws -> RewrapOutcome) throws -> Outcome {
        let progress = ProgressLine("rewrap", total: paths.count)
        let next = Atomic<Int>(0)
        let outcome = Mutex(Outcome())
        let fatal = Mutex<(any Error)?>(nil)
        DispatchQueue.concurrentPerform(iterations: min(jobs, max(paths.count, 1))) { _ in
            while fatal.withLock({ $0 == nil }) {
                let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard index < paths.count else { return }
                do {
                    let result = try work(paths[index])
                    outcome.withLock { outcome in
                        switch result {
                        case .rewrapped: outcome.rewrapped += 1
                        case .alreadyThere: outcome.already += 1
                        case .notSelected: outcome.notSelected += 1
                        }
                    }
                } catch let error as KMSClientError where error.kind == .unreachable {
                    fatal.withLock { $0 = $0 ?? error }
                } catch let error as CommandFailure {
                    fatal.withLock { $0 = $0 ?? error }
                } catch {
                    outcome.withLock { $0.failures.append((paths[index], "\(error)")) }
                }
                progress.advance()
            }
        }
        progress.finish()
        if let error = fatal.withLock({ $0 }) { throw error }
        return outcome.withLock { $0 }
    }
}

/// A system call's failure, as an operator reads it: "open: Permission denied".
struct SystemCallFailure: Error, CustomStringConvertible {
    let description: String
    init(_ what: String, _ code: Int32) { description = "\(what): \(String(cString: strerror(code)))" }
}
