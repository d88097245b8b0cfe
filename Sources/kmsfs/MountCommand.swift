import ArgumentParser
import Foundation
import KMSFSCrypto
import KMSFSFuse
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// `kmsfs mount CIPHERDIR MOUNTPOINT`, also reached as `kmsfs CIPHERDIR MOUNTPOINT -o OPTIONS`,
/// which is how mount.fuse3 runs a helper for `mount -t fuse.kmsfs` and /etc/fstab lines.
struct MountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount a volume (in the background unless -f); unmount with kmsfs umount, fusermount3 -u or SIGTERM.",
        discussion: """
        As a mount helper: an /etc/fstab line such as
          /srv/cipher  /srv/plain  fuse.kmsfs  defaults,_netdev  0  0
        (or `mount -t fuse.kmsfs /srv/cipher /srv/plain`) runs `kmsfs /srv/cipher /srv/plain -o ...`.
        """
    )

    @Argument(help: "The volume's backing directory.") var cipherDirectory: String
    @Argument(help: "Where to mount it.") var mountPoint: String
    @Flag(name: [.short, .long], help: "Stay in the foreground, logging to standard error (for systemd and debugging).")
    var foreground = false
    @Option(name: .short, parsing: .singleValue, help: "Mount options, comma-separated (FUSE's, such as allow_other or ro); may repeat.")
    var options: [String] = []

    /// Options meant for mount(8), fstab or systemd, not for FUSE (mount.fuse3 drops some of
    /// them, not all, depending on how it was called).
    static let mountOnlyOptions: Set<String> = ["defaults", "auto", "noauto", "user", "nouser", "users", "_netdev", "nofail", "rw"]

    /// The FUSE options from the `-o` arguments.
    static func fuseOptions(_ arguments: [String]) -> [String] {
        arguments.flatMap { $0.split(separator: ",").map(String.init) }
            .filter { !mountOnlyOptions.contains($0) && !$0.hasPrefix("x-") && !$0.hasPrefix("comment=") }
    }

    /// Data keys live in a locked heap (after the fork: locks are not inherited). 1 MiB holds
    /// the data-key cache (4 096 keys), the key pool and the directory keys with room to spare.
    /// A daemon announces the lock; a command (fsck) only warns when it is refused.
    static func lockKeyMemory(announce: Bool = true) {
        let logger = Logger(label: "kmsfs")
        switch ProcessHardening.lockKeyMemory(byteCount: 1 << 20) {
        case let .locked(byteCount): if announce { logger.info("key memory: \(byteCount >> 10) KiB locked, out of core dumps") }
        case let .unlocked(reason): logger.warning("key memory not locked, keys may reach swap: \(reason)")
        }
    }

    func run() throws {
        // Both paths absolute: a background daemon works from /.
        let cipher = URL(fileURLWithPath: cipherDirectory).standardizedFileURL.path
        let target = URL(fileURLWithPath: mountPoint).standardizedFileURL.path
        let fuse = Self.fuseOptions(options)
        // Data keys and plaintext pass through this process: never into a core file.
        do { try ProcessHardening.disableCoreDumps() } catch { throw CommandFailure("kmsfs mount: \(error)") }
        if foreground {
            LoggingSystem.bootstrap(StreamLogHandler.standardError)
            Self.lockKeyMemory()
            do {
                try FuseMount.run(cipherDirectory: cipher, mountPoint: target, options: fuse) {
                    SystemdNotify.send("READY=1\nSTATUS=\(cipher) mounted on \(target)")
                }
            } catch {
                throw CommandFailure("kmsfs mount: \(error)")
            }
            return
        }
        let notifier: Daemon.Notifier
        do { notifier = try Daemon.detach() } catch { throw CommandFailure("kmsfs mount: \(error)") }
        SyslogLogHandler.bootstrap(identifier: "kmsfs")
        Self.lockKeyMemory()
        do {
            try FuseMount.run(cipherDirectory: cipher, mountPoint: target, options: fuse, ready: notifier.ready)
        } catch {
            // Before `ready` the parent prints this; after it, the log has it.
            notifier.fail("\(error)")
            Logger(label: "kmsfs").error("mount of \(cipher) on \(target) ended: \(error)")
            throw ExitCode.failure
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
