import CFuse3
import CLinux
import Foundation
import KMSFSVolume
import KMSMetrics
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// A mounted volume: the libfuse session, run until unmounted (fusermount3 -u, SIGTERM, SIGINT).
public enum FuseMount {
    /// The largest write the kernel sends in one request (libfuse's buffer holds 256 pages).
    static let maxWrite: UInt32 = 1 << 20

    /// kmsfs's own mount options (`-o`); every other option is libfuse's.
    public struct Options: Sendable {
        /// Where keys come from (`kms_endpoint=`, `region=`, `profile=`, `key_store=`).
        public var keyService = KeyServiceOptions()
        /// `allow_offline`: mount even when the key service cannot be reached.
        public var allowOffline = false
        /// `no_writeback_cache` turns it off.
        public var writebackCache = true
        /// libfuse's options (`allow_other`, `ro`, ...).
        public var fuse: [String] = []
        /// Whether users other than the one mounting reach the mount (allow_other, allow_root).
        public var sharedWithOtherUsers: Bool { fuse.contains("allow_other") || fuse.contains("allow_root") }
        /// `metrics=unix:/path` or `metrics=127.0.0.1:PORT`: where Prometheus scrapes the mount.
        public var metrics: String?
        public init() {}
    }

    /// Mounts `cipherDirectory` on `mountPoint` and serves it until unmounted; blocks.
    ///
    /// `ready` runs once the mount is in place, before the first request is served: a
    /// background mount tells its parent there that it may exit. By then the volume is locked
    /// against a second mount and its key service has verified the configuration (one real
    /// call with the mount's credentials), unless `allowOffline` let an unreachable service pass.
    /// - Throws: ``VolumeError`` (in use, tampered configuration, key service refused or
    ///   unreachable), ``FuseMountError`` if the mount fails.
    public static func run(cipherDirectory: String, mountPoint: String, options: Options = Options(), ready: () -> Void = {}) throws {
        let logger = Logger(label: "kmsfs")
        MountMetrics.start()  // before the volume's KMS client makes its first metric
        let metricsAddress = try options.metrics.map { text in
            guard let address = MetricsEndpoint.Address(text) else {
                throw FuseMountError("metrics=\(text): give unix:/absolute/path or 127.0.0.1:PORT (loopback only)")
            }
            return address
        }
        // One O_PATH descriptor per inode the kernel knows: take all the descriptors allowed.
        let descriptors = CLinux_raise_descriptor_limit()
        let volume = try Volume(cipherDirectory: cipherDirectory, options: options.keyService, allowOffline: options.allowOffline, logger: logger)
        let configuration = volume.configuration
        let filesystem = try Filesystem(volume: volume, mountPoint: mountPoint, writebackCache: options.writebackCache,
                                        descriptors: descriptors > 0 ? Int(clamping: descriptors) : nil)
        let endpoint = try metricsAddress.map { address in
            try MetricsEndpoint(address) { [keys = volume.keys] in
                MountMetrics.text(cache: keys.cacheStatistics, pool: keys.keyPool)
            }
        }
        defer { endpoint?.close() }
        // On a mount other users reach, the kernel checks every request against the attributes
        // kmsfs reports, with the caller's credentials (it makes no check at all without
        // default_permissions). A mount only its owner reaches (the kernel lets no other uid or
        // gid in) is checked by the backing filesystem instead: the daemon runs with the
        // owner's credentials, so it is refused what they would be (``Operations`` answers
        // access(2) the same way). That spares the round trip the kernel makes for a
        // directory's attributes after every change in it: one request in eight of a create
        // or an unlink. Modes are the ones the kernel sends, with the caller's umask applied,
        // not narrowed by the daemon's.
        let checkedByKernel = options.sharedWithOtherUsers || options.fuse.contains("default_permissions")
        let fuseOptions = ["fsname=" + cipherDirectory, "subtype=kmsfs"] + (checkedByKernel ? ["default_permissions"] : [])
            + options.fuse.filter { $0 != "default_permissions" }
        umask(0)
        let arguments = ["kmsfs", "-o", fuseOptions.joined(separator: ",")]
        var argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var args = CFuse3_args(Int32(argv.count - 1), &argv)
        var ops = Operations.table()
        let userdata = Unmanaged.passRetained(filesystem).toOpaque()
        defer { Unmanaged<Filesystem>.fromOpaque(userdata).release() }
        guard let session = fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, userdata) else {
            throw FuseMountError("cannot create a FUSE session (unknown mount option in \(options.fuse)?)")
        }
        defer { fuse_session_destroy(session) }
        guard fuse_set_signal_handlers(session) == 0 else { throw FuseMountError("cannot install signal handlers") }
        defer { fuse_remove_signal_handlers(session) }
        guard fuse_session_mount(session, mountPoint) == 0 else {
            throw FuseMountError("cannot mount on \(mountPoint) (does it exist, and is it not already a mount?)")
        }
        defer { fuse_session_unmount(session) }
        guard KernelChannel.install(on: session) else { throw FuseMountError("cannot route the FUSE session through kmsfs's channel") }
        logger.info("mounted \(cipherDirectory) on \(mountPoint)",
                    metadata: ["kmsfs.volume": "\(configuration.volumeID)", "kmsfs.keyService": "\(configuration.keyService)",
                               "kmsfs.descriptors": "\(descriptors)"])
        ready()
        let config = fuse_loop_cfg_create()
        defer { fuse_loop_cfg_destroy(config) }
        // One /dev/fuse descriptor per worker thread: a request is read by the thread that
        // answers it, without waking another.
        fuse_loop_cfg_set_clone_fd(config, 1)
        // 0: unmounted; a positive number: the signal (SIGTERM, SIGINT, SIGHUP) that ended the
        // loop, after which the deferred unmount runs; negative: -errno.
        let status = CFuse3_session_loop_mt(session, config)
        // Nothing may notify the kernel through the session once it is being torn down.
        filesystem.tree.eviction?.finish()
        KernelChannel.close()
        guard status >= 0 else { throw FuseMountError("the FUSE loop failed: \(String(cString: strerror(-status)))") }
        logger.info("unmounted \(mountPoint)\(status > 0 ? " on signal \(status)" : "")")
    }
}

public struct FuseMountError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
