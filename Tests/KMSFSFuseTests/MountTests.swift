import CLinux
import Foundation
import KMSClient
import KMSEngine
import KMSFSFormat
import KMSFSVolume
import Testing

/// A volume mounted by the real `kmsfs mount` process; always unmounted (fusermount3 -u, then
/// -uz and SIGKILL if needed) when the test ends, pass or fail.
final class MountedVolume {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("kmsfs-mount-\(UUID().uuidString)").path
    var cipher: String { root + "/cipher" }
    var mountPoint: String { root + "/mnt" }
    /// The mount daemon's standard error (its log).
    var logPath: String { root + "/mount.log" }
    let configuration: VolumeConfiguration
    private var process: Process?

    init(holes: HolePolicy = .sealed) throws {
        var options = VolumeInitializer.Options()
        options.holes = holes
        configuration = try VolumeInitializer.initialize(cipherDirectory: root + "/cipher", options: options)
        try FileManager.default.createDirectory(atPath: root + "/mnt", withIntermediateDirectories: true)
    }

    /// Backing files made the way the mount makes them (creation comes to the mount next).
    func makeFile(_ relativePath: String, contents: [UInt8]) throws {
        guard case let .embedded(embedded) = configuration.keyService else { return }
        let store = EmbeddedStore.of(cipherDirectory: cipher, options: .init())
        let engine = try store.openEngine()
        let client = EmbeddedKMSClient(engine: engine, caller: Caller(account: embedded.account, region: embedded.region, viaService: "kmsfs"))
        let keys = FileKeys(volumeID: configuration.volumeID, chunkSize: configuration.chunkSize, client: client, pool: nil, cache: DataKeyCache())
        let (fd, file) = try BackingFile.create(path: cipher + "/" + relativePath, keys: keys, keyID: configuration.defaultKeyID)
        try contents.withUnsafeBytes { try file.write($0, at: 0) }
        close(fd)
    }

    /// Mounts in the foreground; `options` go to `-o`.
    func mount(options: [String] = []) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("kmsfs")
        process.arguments = ["mount", "-f", cipher, mountPoint] + (options.isEmpty ? [] : ["-o", options.joined(separator: ",")])
        process.standardOutput = FileHandle.nullDevice
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(20)
        while !isMounted {
            guard process.isRunning, Date() < deadline else { throw MountFailure() }
            usleep(20_000)
        }
    }

    /// The mount daemon's log so far.
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Whether the log says `text` within 30 s (FUSE's init may come after the mount).
    func logSays(_ text: String) -> Bool {
        let deadline = Date().addingTimeInterval(30)
        while !log.contains(text) {
            guard Date() < deadline else { return false }
            usleep(20_000)
        }
        return true
    }

    /// A second key with `alias` in the embedded store, made while unmounted (a mount holds the
    /// store). Returns its ARN.
    func makeKey(alias: String) throws -> String {
        guard case let .embedded(embedded) = configuration.keyService else { throw MountFailure() }
        let store = EmbeddedStore.of(cipherDirectory: cipher, options: .init())
        let arn: String
        do {
            let engine = try store.openEngine()
            let caller = Caller(account: embedded.account, region: embedded.region, viaService: "kmsfs")
            let key = try engine.createKey(CreateKeyRequest(), caller: caller).keyMetadata
            try engine.createAlias(aliasName: alias, targetKeyID: key.keyId, caller: caller)
            try engine.flushAudit()
            arn = key.arn
        }
        // Directories may name it (the volume's sealed allow-list), by alias or by ARN.
        try VolumeConfiguration.allowKeys([alias, arn], cipherDirectory: cipher)
        return arn
    }

    var isMounted: Bool {
        ((try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? "").contains(" \(mountPoint) fuse.kmsfs ")
    }

    func unmount() {
        if isMounted { run("/bin/fusermount3", "-u", mountPoint) }
        if isMounted { run("/bin/fusermount3", "-uz", mountPoint) }
        if let process {
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        }
        process = nil
    }

    private func run(_ tool: String, _ arguments: String...) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = arguments
        p.standardError = FileHandle.nullDevice
        try? p.run()
        p.waitUntilExit()
    }

    deinit {
        unmount()
        try? FileManager.default.removeItem(atPath: root)
    }

    struct MountFailure: Error {}
}

@Suite(.serialized, .enabled(if: FileManager.default.fileExists(atPath: "/dev/fuse")))
struct MountTests {
    /// The plaintext view lists the backing tree (kmsfs.conf hidden) and reports plaintext sizes,
    /// computed from ciphertext sizes without any key.
    @Test func listsTreeWithPlaintextSizes() throws {
        let volume = try MountedVolume()
        defer { volume.unmount() }
        try FileManager.default.createDirectory(atPath: volume.cipher + "/docs/deep", withIntermediateDirectories: true)
        let sizes = [0, 1, 16383, 16384, 16385, 100_000]
        for size in sizes { try volume.makeFile("docs/f\(size)", contents: [UInt8](repeating: 7, count: size)) }
        try volume.mount()
        #expect(try FileManager.default.contentsOfDirectory(atPath: volume.mountPoint) == ["docs"])
        let listed = try FileManager.default.contentsOfDirectory(atPath: volume.mountPoint + "/docs").sorted()
        #expect(listed == (["deep"] + sizes.map { "f\($0)" }).sorted())
        for size in sizes {
            let attributes = try FileManager.default.attributesOfItem(atPath: volume.mountPoint + "/docs/f\(size)")
            #expect((attributes[.size] as? Int) == size, "f\(size)")
            let backing = try FileManager.default.attributesOfItem(atPath: volume.cipher + "/docs/f\(size)")
            #expect((backing[.size] as? Int) != size)
        }
        #expect(!FileManager.default.fileExists(atPath: volume.mountPoint + "/kmsfs.conf"))
        #expect(!FileManager.default.fileExists(atPath: volume.mountPoint + "/docs/missing"))
        volume.unmount()
        #expect(!volume.isMounted)
    }

    /// Reads through the mount return the plaintext, across chunk boundaries and at odd offsets;
    /// a tampered chunk reads as EIO, never as other bytes.
    @Test func readsPlaintextAndRefusesTamperedChunks() throws {
        let volume = try MountedVolume()
        defer { volume.unmount() }
        let data = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
        try volume.makeFile("data.bin", contents: data)
        try volume.makeFile("tampered.bin", contents: data)
        // Flip one byte inside the second chunk of the backing file.
        let backing = volume.cipher + "/tampered.bin"
        var stored = try #require(FileManager.default.contents(atPath: backing))
        stored[32 + ChunkGeometry(plainChunkSize: 16384).cipherChunkSize + 100] ^= 0x01
        try stored.write(to: URL(fileURLWithPath: backing))
        try volume.mount()

        #expect(FileManager.default.contents(atPath: volume.mountPoint + "/data.bin").map(Array.init) == data)
        let handle = try #require(FileHandle(forReadingAtPath: volume.mountPoint + "/data.bin"))
        try handle.seek(toOffset: 16380)
        #expect(Array(try handle.read(upToCount: 10) ?? Data()) == Array(data[16380..<16390]))
        try handle.close()

        let fd = open(volume.mountPoint + "/tampered.bin", O_RDONLY)
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        #expect(pread(fd, &buffer, 4096, 0) == 4096)  // chunk 0 is intact
        #expect(Array(buffer) == Array(data[0..<4096]))
        #expect(pread(fd, &buffer, 4096, 16384) == -1 && errno == EIO)  // chunk 1 is not
        // The daemon says which file (inode) and chunk failed, and never shows data.
        let log = (try? String(contentsOfFile: volume.logPath, encoding: .utf8)) ?? ""
        #expect(log.contains("integrity failure in inode") && log.contains("chunk 1 failed authentication"), "\(log)")
    }

    /// Directories and names: mkdir, rmdir, unlink, rename (with RENAME_NOREPLACE and
    /// RENAME_EXCHANGE), reflected in the backing directory; kmsfs's own file cannot be touched.
    @Test func namespaceOperations() throws {
        let volume = try MountedVolume()
        defer { volume.unmount() }
        try volume.makeFile("a.txt", contents: Array("alpha".utf8))
        try volume.makeFile("b.txt", contents: Array("bravo".utf8))
        try volume.mount()
        let m = volume.mountPoint
        try FileManager.default.createDirectory(atPath: m + "/dir/sub", withIntermediateDirectories: true)
        #expect(FileManager.default.fileExists(atPath: volume.cipher + "/dir/sub"))
        try FileManager.default.moveItem(atPath: m + "/a.txt", toPath: m + "/dir/a-moved.txt")
        #expect(FileManager.default.contents(atPath: m + "/dir/a-moved.txt") == Data("alpha".utf8))
        #expect(CLinux_renameat2(AT_FDCWD, m + "/b.txt", AT_FDCWD, m + "/dir/a-moved.txt", 1) == -1 && errno == EEXIST)
        #expect(CLinux_renameat2(AT_FDCWD, m + "/b.txt", AT_FDCWD, m + "/dir/a-moved.txt", 2) == 0)
        #expect(FileManager.default.contents(atPath: m + "/b.txt") == Data("alpha".utf8))
        #expect(FileManager.default.contents(atPath: m + "/dir/a-moved.txt") == Data("bravo".utf8))
        #expect(rmdir(m + "/dir") == -1 && errno == ENOTEMPTY)
        try FileManager.default.removeItem(atPath: m + "/dir/a-moved.txt")
        #expect(rmdir(m + "/dir/sub") == 0 && rmdir(m + "/dir") == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: volume.cipher).sorted() == ["b.txt", "kmsfs.conf"])
        #expect(mkdir(m + "/kmsfs.conf", 0o755) == -1 && errno == EEXIST)
        #expect(unlink(m + "/kmsfs.conf") == -1)
        #expect(FileManager.default.fileExists(atPath: volume.cipher + "/kmsfs.conf"))
    }

    /// A seeded random sequence of writes, truncations and reads through the mount, compared after
    /// every step with the same operations on a plain file; then a remount reads the same bytes,
    /// and the backing file never holds the plaintext.
    @Test func randomOperationsMatchAPlainFile() throws {
        let volume = try MountedVolume()
        defer { volume.unmount() }
        try volume.mount()
        let plainPath = volume.root + "/plain.bin", mountedPath = volume.mountPoint + "/random.bin"
        let plain = open(plainPath, O_RDWR | O_CREAT, 0o600), mounted = open(mountedPath, O_RDWR | O_CREAT, 0o600)
        #expect(plain >= 0 && mounted >= 0)
        var state: UInt64 = 0x5eed
        func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(bound))
        }
        for step in 0..<400 {
            let offset = next(80_000)
            switch next(10) {
            case 0..<5:
                let count = 1 + next(40_000)
                let data = (0..<count).map { UInt8(truncatingIfNeeded: $0 &+ step) }
                #expect(pwrite(plain, data, count, off_t(offset)) == count)
                #expect(pwrite(mounted, data, count, off_t(offset)) == count, "step \(step)")
            case 5..<7:
                #expect(ftruncate(plain, off_t(offset)) == 0)
                #expect(ftruncate(mounted, off_t(offset)) == 0, "step \(step)")
            default:
                let count = next(50_000)
                var a = [UInt8](repeating: 0, count: count), b = [UInt8](repeating: 1, count: count)
                let x = pread(plain, &a, count, off_t(offset)), y = pread(mounted, &b, count, off_t(offset))
                #expect(x == y && x >= 0 && a[0..<max(x, 0)] == b[0..<max(y, 0)], "step \(step)")
            }
        }
        close(plain)
        close(mounted)
        let expected = try #require(FileManager.default.contents(atPath: plainPath))
        #expect(FileManager.default.contents(atPath: mountedPath) == expected)
        volume.unmount()
        try volume.mount()
        #expect(FileManager.default.contents(atPath: mountedPath) == expected)
        // The backing file never holds a run of the plaintext (any 64 bytes from its middle).
        let backing = try #require(FileManager.default.contents(atPath: volume.cipher + "/random.bin"))
        if expected.count > 200 {
            let sample = expected[(expected.count / 2)..<(expected.count / 2 + 64)]
            #expect(backing.range(of: Data(sample)) == nil)
        }
    }

    /// Files created through the mount: a new key each, O_EXCL, O_APPEND, O_TRUNC, chmod and times.
    @Test func createAppendTruncateAndAttributes() throws {
        let volume = try MountedVolume()
        defer { volume.unmount() }
        try volume.mount()
        let path = volume.mountPoint + "/log.txt"
        #expect(FileManager.default.createFile(atPath: path, contents: Data("one\n".utf8)))
        #expect(open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600) == -1 && errno == EEXIST)
        let appender = open(path, O_WRONLY | O_APPEND)
        #expect(write(appender, "two\n", 4) == 4)
        close(appender)
        #expect(FileManager.default.contents(atPath: path) == Data("one\ntwo\n".utf8))
        let truncating = open(path, O_WRONLY | O_TRUNC)
        #expect(write(truncating, "3", 1) == 1)
        close(truncating)
        #expect(FileManager.default.contents(atPath: path) == Data("3".utf8))
        #expect(chmod(path, 0o640) == 0)
        #expect(((try FileManager.default.attributesOfItem(atPath: path))[.posixPermissions] as? Int) == 0o640)
        var times = [timespec(tv_sec: 1_000_000_000, tv_nsec: 0), timespec(tv_sec: 1_500_000_000, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        let modified = try FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date
        #expect(modified == Date(timeIntervalSince1970: 1_500_000_000))
        // Each file has its own wrapped key in its backing file's attribute.
        #expect(FileManager.default.createFile(atPath: volume.mountPoint + "/other.txt", contents: Data("x".utf8)))
        var a = [UInt8](repeating: 0, count: 4096), b = a
        let la = getxattr(volume.cipher + "/log.txt", "user.kmsfs.key", &a, a.count)
        let lb = getxattr(volume.cipher + "/other.txt", "user.kmsfs.key", &b, b.count)
        #expect(la > 0 && lb > 0 && Array(a[0..<la]) != Array(b[0..<lb]))
        let info = try FileInfo.read(backingPath: volume.cipher + "/log.txt", cipherDirectory: volume.cipher, volume: volume.configuration)
        #expect(info.keyARN == volume.configuration.defaultKeyID && info.plaintextSize == 1)
    }

    /// Symlinks, hard links (sharing one key), and user xattrs with kmsfs's own hidden and protected.
    @Test func linksAndExtendedAttributes() throws {
        let volume = try MountedVolume()
        defer { volume.unmount() }
        try volume.mount()
        let m = volume.mountPoint
        #expect(FileManager.default.createFile(atPath: m + "/target.txt", contents: Data("linked".utf8)))
        #expect(symlink("target.txt", m + "/soft") == 0)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: m + "/soft") == "target.txt")
        #expect(FileManager.default.contents(atPath: m + "/soft") == Data("linked".utf8))
        #expect(link(m + "/target.txt", m + "/hard") == 0)
        #expect(FileManager.default.contents(atPath: m + "/hard") == Data("linked".utf8))
        var info = stat()
        #expect(stat(m + "/hard", &info) == 0 && info.st_nlink == 2)
        // Writing through one name is read through the other.
        let fd = open(m + "/hard", O_WRONLY | O_APPEND)
        #expect(write(fd, "!", 1) == 1)
        close(fd)
        #expect(FileManager.default.contents(atPath: m + "/target.txt") == Data("linked!".utf8))

        let path = m + "/target.txt"
        #expect(setxattr(path, "user.color", "blue", 4, 0) == 0)
        var value = [UInt8](repeating: 0, count: 16)
        #expect(getxattr(path, "user.color", &value, 16) == 4 && Array(value[0..<4]) == Array("blue".utf8))
        var names = [CChar](repeating: 0, count: 256)
        let count = listxattr(path, &names, 256)
        let listed = names[0..<max(count, 0)].split(separator: 0).map { String(cString: Array($0) + [0]) }
        #expect(listed == ["user.color"])  // user.kmsfs.key is not listed
        #expect(getxattr(path, "user.kmsfs.key", &value, 16) == -1 && errno == ENODATA)
        #expect(setxattr(path, "user.kmsfs.key", "x", 1, 0) == -1 && errno == EPERM)
        #expect(removexattr(path, "user.kmsfs.key") == -1 && errno == EPERM)
        #expect(removexattr(path, "user.color") == 0)
        // The key attribute is still there on the backing file, and the file still reads.
        #expect(getxattr(volume.cipher + "/target.txt", "user.kmsfs.key", nil, 0) > 0)
        #expect(FileManager.default.contents(atPath: path) == Data("linked!".utf8))
    }
}
