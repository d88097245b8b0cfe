import ArgumentParser
import Foundation
import KMSFSCrypto
import KMSFSFuse
import KMSFSVolume
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
    @Option(name: .short, parsing: .singleValue, help: """
        Mount options, comma-separated; may repeat. FUSE's (allow_other, ro, ...) and kmsfs's: kms_endpoint=URL, \
        region=R, profile=P, key_store=DIR, passphrase_file=FILE, root_key_file=FILE, allow_offline, log=PATH, \
        no_writeback_cache, metrics=unix:/PATH or metrics=127.0.0.1:PORT (Prometheus GET /metrics).
        """)
    var options: [String] = []
    @OptionGroup var keyService: KeyServiceFlags
    @Flag(help: "Mount even if the key service cannot be reached (files whose keys are not cached wait for it).")
    var allowOffline = false
    @Option(help: "Where a background mount logs when there is no syslog (default: ~/.local/state/kmsfs/kmsfs.log).")
    var log: String?

    /// Options meant for mount(8), fstab or systemd, not for FUSE (mount.fuse3 drops some of
    /// them, not all, depending on how it was called).
    static let mountOnlyOptions: Set<String> = ["defaults", "auto", "noauto", "user", "nouser", "users", "_netdev", "nofail", "rw"]

    /// The `-o` arguments, split into kmsfs's settings (flags win) and FUSE's options.
    func mountOptions() -> (FuseMount.Options, log: String?, passphraseFile: String?) {
        var result = FuseMount.Options()
        var logPath = log
        var passphraseFile = keyService.passphraseFile
        result.keyService = keyService.given
        result.allowOffline = allowOffline
        for option in options.flatMap({ $0.split(separator: ",").map(String.init) }) {
            let (name, value) = option.firstIndex(of: "=").map { (String(option[..<$0]), String(option[option.index(after: $0)...])) } ?? (option, "")
            switch name {
            case "kms_endpoint": result.keyService.endpoint = result.keyService.endpoint ?? value
            case "region": result.keyService.region = result.keyService.region ?? value
            case "profile": result.keyService.profile = result.keyService.profile ?? value
            case "key_store": result.keyService.keyStore = result.keyService.keyStore ?? value
            case "passphrase_file": passphraseFile = passphraseFile ?? value
            case "root_key_file": result.keyService.unlock.keyFile = result.keyService.unlock.keyFile ?? value
            case "allow_offline": result.allowOffline = true
            case "log": logPath = logPath ?? value
            case "metrics": result.metrics = value
            case "no_writeback_cache": result.writebackCache = false
            case "writeback_cache": result.writebackCache = true
            default:
                if !Self.mountOnlyOptions.contains(option) && !option.hasPrefix("x-") && !option.hasPrefix("comment=") {
                    result.fuse.append(option)
                }
            }
        }
        return (result, logPath, passphraseFile)
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
        var (mount, logPath, passphraseFile) = mountOptions()
        if let store = mount.keyService.keyStore { mount.keyService.keyStore = URL(fileURLWithPath: store).standardizedFileURL.path }
        if let file = mount.keyService.unlock.keyFile { mount.keyService.unlock.keyFile = URL(fileURLWithPath: file).standardizedFileURL.path }
        // Asked here, before a background mount leaves the terminal.
        do {
            mount.keyService = try KeyServiceFlags.unlocking(mount.keyService, cipherDirectory: cipher, passphraseFile: passphraseFile)
        } catch {
            throw CommandFailure("kmsfs mount: \(error)")
        }
        // Said where the user is looking, not only in a background mount's log.
        let store = EmbeddedStore.of(cipherDirectory: cipher, options: mount.keyService)
        if !foreground, (try? store.protectionKind()) == .unprotected { RootKeyProtectionFlags.warnUnprotected(store) }
        // Data keys and plaintext pass through this process: never into a core file.
        do { try ProcessHardening.disableCoreDumps() } catch { throw CommandFailure("kmsfs mount: \(error)") }
        if foreground {
            LoggingSystem.bootstrap(StreamLogHandler.standardError)
            Self.lockKeyMemory()
            do {
                try FuseMount.run(cipherDirectory: cipher, mountPoint: target, options: mount) {
                    SystemdNotify.send("READY=1\nSTATUS=\(cipher) mounted on \(target)")
                }
            } catch {
                throw CommandFailure("kmsfs mount: \(error)")
            }
            return
        }
        // A background daemon's log must reach someone: syslog when there is one, else a file,
        // and the command says which before it returns.
        let logFile = try BackgroundLog.open(path: logPath)
        let notifier: Daemon.Notifier
        do { notifier = try Daemon.detach(announce: logFile.map { "kmsfs: logging to \($0.path)" }) } catch { throw CommandFailure("kmsfs mount: \(error)") }
        if let logFile {
            LoggingSystem.bootstrap(StreamLogHandler.standardError)
            dup2(logFile.fd, STDERR_FILENO)
        } else {
            SyslogLogHandler.bootstrap(identifier: "kmsfs")
        }
        Self.lockKeyMemory()
        do {
            try FuseMount.run(cipherDirectory: cipher, mountPoint: target, options: mount) { notifier.ready(keepStandardError: logFile != nil) }
        } catch {
            // Before `ready` the parent prints this; after it, the log has it.
            notifier.fail("\(error)")
            Logger(label: "kmsfs").error("mount of \(cipher) on \(target) ended: \(error)")
            throw ExitCode.failure
        }
    }
}

/// The file a background mount logs to when the machine has no syslog socket.
enum BackgroundLog {
    /// nil when syslog is there and no file was asked for; else the open file (append, 0600).
    static func open(path: String?) throws -> (fd: Int32, path: String)? {
        if path == nil && FileManager.default.fileExists(atPath: "/dev/log") { return nil }
        let home = ProcessInfo.processInfo.environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? "/root"
        let chosen = URL(fileURLWithPath: path ?? home + "/.local/state/kmsfs/kmsfs.log").standardizedFileURL.path
        try? FileManager.default.createDirectory(atPath: (chosen as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                                                 attributes: [.posixPermissions: 0o700])
        let fd = Glibc.open(chosen, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CommandFailure("kmsfs mount: cannot open the log \(chosen): \(String(cString: strerror(errno)))") }
        return (fd, chosen)
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
