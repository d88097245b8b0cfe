import ArgumentParser
import CLinux
import Dispatch
import Foundation
import KMSClient
import KMSFSCrypto
import KMSFSFormat
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
            let outcome = try mounted.map { try online(mountPoint: target, cipherDirectory: $0) } ?? offline(cipherDirectory: target)
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
        let names = path.isEmpty ? ReportNames(subtree: "")
            : try ReportNames.resolve(cipherDirectory: cipherDirectory, subtree: path, keyService: keyService, command: "rewrap")
        let inventory = try KeyInventory.scan(cipherDirectory: cipherDirectory, under: names.subtree, names: names.cipher)
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
        guard let destinationARN = try volume.allowedKeyARN(destination, resolving: true) else {
            throw CommandFailure("\(destination) is not a key this volume allows: kmsfs allow-key \(cipherDirectory) \(destination) first")
        }
        let sourceARNs = try Set(sources.map { try volume.keys.keyARN($0) })
        defer { Self.sync(cipherDirectory) }
        if let buckets = volume.keys.buckets {
            // Every file of a bucket shares its key: the bucket is the unit, the whole volume the scope.
            guard path.isEmpty else {
                throw CommandFailure("the volume uses bucket keys, which files under --path share with files elsewhere: re-wrap the whole volume")
            }
            let bucketIDs = try BucketKeys.bucketIDs(cipherDirectory: cipherDirectory)
            var outcome = try inParallel(bucketIDs.map { hex($0) }, unit: "bucket keys") { index in
                try buckets.rewrap(bucketID: bucketIDs[index], to: destinationARN) { sourceARNs.isEmpty || sourceARNs.contains($0) }
            }
            outcome.unit = "bucket keys"
            return outcome
        }
        let (paths, components, unexamined) = try Self.files(in: cipherDirectory, under: path, names: volume.names)
        var outcome = try inParallel(paths) { index in
            let fd = VolumeFiles.open(components[index], in: cipherDirectory)
            guard fd >= 0 else { throw SystemCallFailure("open", errno) }
            defer { close(fd) }
            return try volume.keys.rewrap(fd: fd, to: destinationARN) { sourceARNs.isEmpty || sourceARNs.contains($0) }
        }
        outcome.failures += unexamined
        return outcome
    }

    /// The regular files under `subtree` of `root` (a backing directory, its names decrypted with
    /// `names`, or a mount), walked without following links, and the entries that could not be
    /// examined.
    static func files(in root: String, under subtree: String, names: NameCipher? = nil) throws -> (paths: [String], components: [[[CChar]]], unexamined: [(String, String)]) {
        var paths: [String] = [], components: [[[CChar]]] = [], unexamined: [(String, String)] = []
        try VolumeFiles.forEachFile(in: root, under: subtree, names: names, failed: { unexamined.append(($0, $1)) }) { entry in
            paths.append(entry.path)
            components.append(entry.components)
        }
        return (paths, components, unexamined)
    }

    /// Makes the replaced attributes durable before the run says they are done.
    static func sync(_ directory: String) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = CLinux_syncfs(fd)
        close(fd)
    }

    /// Mounted: the daemon re-wraps each file when asked through its attribute; which key a file
    /// has comes from the mount's `user.kmsfs.info`, before and after.
    private func online(mountPoint: String, cipherDirectory: String) throws -> Outcome {
        let destination = self.destination!
        // The mount resolves only the destination (and only among the keys the volume allows).
        guard !sources.contains(where: { $0.hasPrefix("alias/") }) else {
            throw CommandFailure("name --from keys by ARN or key ID on a mounted volume (kmsfs keys lists them)")
        }
        defer { Self.sync(cipherDirectory) }
        let (paths, components, unexamined) = try Self.files(in: mountPoint, under: path)
        var outcome = try inParallel(paths) { index in
            // O_PATH: the attributes are reached without opening the file (which would unwrap its key).
            let fd = VolumeFiles.open(components[index], in: mountPoint, flags: CLinux_O_PATH)
            guard fd >= 0 else { throw SystemCallFailure("open", errno) }
            defer { close(fd) }
            let file = "/proc/self/fd/\(fd)"
            let current = try Self.keyARN(ofMounted: file)
            if KeyInventory.matches(current, destination) { return .alreadyThere }
            guard sources.isEmpty || sources.contains(where: { KeyInventory.matches(current, $0) }) else { return .notSelected(keyARN: current) }
            guard setxattr(file, "user.kmsfs.rewrap", destination, destination.utf8.count, 0) == 0 else {
                let error = errno
                if error == EKEYREJECTED {
                    throw CommandFailure("the mount refuses \(destination): not a key this volume allows (kmsfs allow-key)")
                }
                throw SystemCallFailure("re-wrap", error)
            }
            return try Self.keyARN(ofMounted: file) == current ? .alreadyThere : .rewrapped(from: current)
        }
        outcome.failures += unexamined
        return outcome
    }

    static func keyARN(ofMounted path: String) throws -> String {
        var value = [UInt8](repeating: 0, count: 4096)
        let count = getxattr(path, "user.kmsfs.info", &value, value.count)
        guard count >= 0 else { throw SystemCallFailure("user.kmsfs.info", errno) }
        let line = String(decoding: value[0..<count], as: UTF8.self).split(separator: "\n").first { $0.hasPrefix("KMS key: ") }
        guard let line else { throw SystemCallFailure("user.kmsfs.info names no key", EIO) }
        return String(line.dropFirst("KMS key: ".count))
    }

    /// Runs `work` on every path with `jobs` workers and a progress line. A failure that says the
    /// key service cannot be reached, or that the destination is refused, stops the run (every
    /// other file would fail the same way); anything else is that file's failure.
    private func inParallel(_ paths: [String], unit: String = "files", _ work: @escaping @Sendable (Int) throws -> RewrapOutcome) throws -> Outcome {
        let progress = ProgressLine("rewrap", total: paths.count, unit: unit)
        let next = Atomic<Int>(0)
        let outcome = Mutex(Outcome())
        let fatal = Mutex<(any Error)?>(nil)
        DispatchQueue.concurrentPerform(iterations: min(jobs, max(paths.count, 1))) { _ in
            while fatal.withLock({ $0 == nil }) {
                let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard index < paths.count else { return }
                do {
                    let result = try work(index)
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
