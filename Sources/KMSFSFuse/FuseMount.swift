import CFuse3
import Foundation
import KMSFSVolume
#if canImport(Glibc)
import Glibc
#endif

/// A mounted volume: the libfuse session, run until unmounted (fusermount3 -u, SIGTERM, SIGINT).
public enum FuseMount {
    /// Mounts `cipherDirectory` on `mountPoint` and serves it until unmounted; blocks.
    /// - Throws: if the volume cannot be read or the mount fails.
    public static func run(cipherDirectory: String, mountPoint: String, options: [String] = []) throws {
        let configuration = try VolumeConfiguration.load(cipherDirectory: cipherDirectory)
        let filesystem = try Filesystem(cipherDirectory: cipherDirectory, configuration: configuration)
        var arguments = ["kmsfs", "-o", (["fsname=kmsfs:" + cipherDirectory, "subtype=kmsfs"] + options).joined(separator: ",")]
        var argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        _ = arguments
        var args = CFuse3_args(Int32(argv.count - 1), &argv)
        var ops = Operations.table()
        let userdata = Unmanaged.passRetained(filesystem).toOpaque()
        defer { Unmanaged<Filesystem>.fromOpaque(userdata).release() }
        guard let session = fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, userdata) else {
            throw FuseMountError("cannot create a FUSE session (bad mount options?)")
        }
        defer { fuse_session_destroy(session) }
        guard fuse_set_signal_handlers(session) == 0 else { throw FuseMountError("cannot install signal handlers") }
        defer { fuse_remove_signal_handlers(session) }
        guard fuse_session_mount(session, mountPoint) == 0 else { throw FuseMountError("cannot mount on \(mountPoint)") }
        defer { fuse_session_unmount(session) }
        let config = fuse_loop_cfg_create()
        defer { fuse_loop_cfg_destroy(config) }
        let status = CFuse3_session_loop_mt(session, config)
        guard status == 0 else { throw FuseMountError("the FUSE loop ended with status \(status)") }
    }
}

public struct FuseMountError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
