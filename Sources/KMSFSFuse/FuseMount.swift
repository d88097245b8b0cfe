import CFuse3
import Foundation
import KMSFSVolume
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// A mounted volume: the libfuse session, run until unmounted (fusermount3 -u, SIGTERM, SIGINT).
public enum FuseMount {
    /// The largest write the kernel sends in one request (libfuse's buffer holds 256 pages).
    static let maxWrite: UInt32 = 1 << 20

    /// Mounts `cipherDirectory` on `mountPoint` and serves it until unmounted; blocks.
    /// `options` are libfuse's mount options, plus kmsfs's `no_writeback_cache`.
    ///
    /// `ready` runs once the mount is in place (and an embedded key store is open), before the
    /// first request is served: a background mount tells its parent there that it may exit. A
    /// remote key service is not asked at mount time: it may come up later, and until then
    /// opens of files whose keys are not cached fail with the client's errno.
    /// - Throws: ``FuseMountError`` if the volume cannot be read or the mount fails.
    public static func run(cipherDirectory: String, mountPoint: String, options: [String] = [], ready: () -> Void = {}) throws {
        let logger = Logger(label: "kmsfs")
        let configuration = try VolumeConfiguration.load(cipherDirectory: cipherDirectory)
        // kmsfs's own options; the rest are libfuse's.
        let writeback = !options.contains("no_writeback_cache")
        let fuseOptions = options.filter { $0 != "writeback_cache" && $0 != "no_writeback_cache" }
        let filesystem = try Filesystem(cipherDirectory: cipherDirectory, mountPoint: mountPoint, configuration: configuration,
                                        writebackCache: writeback)
        let arguments = ["kmsfs", "-o", (["fsname=" + cipherDirectory, "subtype=kmsfs"] + fuseOptions).joined(separator: ",")]
        var argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var args = CFuse3_args(Int32(argv.count - 1), &argv)
        var ops = Operations.table()
        let userdata = Unmanaged.passRetained(filesystem).toOpaque()
        defer { Unmanaged<Filesystem>.fromOpaque(userdata).release() }
        guard let session = fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, userdata) else {
            throw FuseMountError("cannot create a FUSE session (unknown mount option in \(options)?)")
        }
        defer { fuse_session_destroy(session) }
        guard fuse_set_signal_handlers(session) == 0 else { throw FuseMountError("cannot install signal handlers") }
        defer { fuse_remove_signal_handlers(session) }
        guard fuse_session_mount(session, mountPoint) == 0 else {
            throw FuseMountError("cannot mount on \(mountPoint) (does it exist, and is it not already a mount?)")
        }
        defer { fuse_session_unmount(session) }
        logger.info("mounted \(cipherDirectory) on \(mountPoint)",
                    metadata: ["kmsfs.volume": "\(configuration.volumeID)", "kmsfs.keyService": "\(configuration.keyService)"])
        ready()
        let config = fuse_loop_cfg_create()
        defer { fuse_loop_cfg_destroy(config) }
        // One /dev/fuse descriptor per worker thread: a request is read by the thread that
        // answers it, without waking another.
        fuse_loop_cfg_set_clone_fd(config, 1)
        // 0: unmounted; a positive number: the signal (SIGTERM, SIGINT, SIGHUP) that ended the
        // loop, after which the deferred unmount runs; negative: -errno.
        let status = CFuse3_session_loop_mt(session, config)
        guard status >= 0 else { throw FuseMountError("the FUSE loop failed: \(String(cString: strerror(-status)))") }
        logger.info("unmounted \(mountPoint)\(status > 0 ? " on signal \(status)" : "")")
    }
}

public struct FuseMountError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
