import CLinux
import Foundation
import Synchronization
import Testing

/// Contents under concurrency, fallocate and mmap, on a real mount.
@Suite(.serialized, .enabled(if: FileManager.default.fileExists(atPath: "/dev/fuse")))
struct ContentConcurrencyTests {
    /// Four writers, each with its own descriptor and its own 1 MiB region of one file, and two
    /// readers of the whole file, all at once: every read succeeds (no chunk is seen half
    /// written), and the file ends up as the four regions say, byte for byte. Without the
    /// writeback cache every write reaches the daemon's range locks as it is made; with it, the
    /// kernel's writeback sends them in batches.
    @Test(arguments: [["no_writeback_cache"], []]) func concurrentWritersOnDisjointRegions(options: [String]) throws {
        let volume = try MountedVolume()
        defer { volume.unmount() }
        try volume.mount(options: options)
        let path = volume.mountPoint + "/shared.bin"
        let region = 1 << 20, writers = 4
        let setup = open(path, O_RDWR | O_CREAT, 0o600)
        #expect(setup >= 0 && ftruncate(setup, off_t(region * writers + 1)) == 0)
        close(setup)
        let expected = Mutex<[[UInt8]]>(Array(repeating: [UInt8](repeating: 0, count: region), count: writers))
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: writers + 2) { worker in
            let fd = open(path, O_RDWR)
            defer { close(fd) }
            var state = UInt64(worker + 1) &* 0x9e3779b97f4a7c15
            func next(_ bound: Int) -> Int {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return Int((state >> 33) % UInt64(bound))
            }
            if worker < writers {
                var mine = [UInt8](repeating: 0, count: region)
                for step in 0..<150 {
                    let count = 1 + next(40_000), start = next(region - count)
                    let data = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ step &+ worker) }
                    let written = pwrite(fd, data, count, off_t(worker * region + start))
                    if written != count { failures.withLock { $0.append("writer \(worker) step \(step): \(written), errno \(errno)") } }
                    mine.replaceSubrange(start..<start + count, with: data)
                }
                expected.withLock { $0[worker] = mine }
            } else {
                var buffer = [UInt8](repeating: 0, count: 100_000)
                for step in 0..<300 {
                    let offset = next(region * writers)
                    let got = pread(fd, &buffer, buffer.count, off_t(offset))
                    if got <= 0 { failures.withLock { $0.append("reader \(worker) step \(step) at \(offset): \(got), errno \(errno)") } }
                }
            }
        }
        #expect(failures.withLock { $0 } == [])
        let contents = try #require(FileManager.default.contents(atPath: path))
        #expect(contents.count == region * writers + 1)
        #expect(Array(contents.prefix(region * writers)) == expected.withLock { $0.flatMap { $0 } })
        #expect(!volume.log.contains("integrity failure"))
        #expect(volume.logSays("writeback cache \(options.isEmpty)"))
    }

    /// fallocate: mode 0 grows the file (zeros, no data written) and KEEP_SIZE does not; the
    /// operations that would re-seal chunks in place are refused with EOPNOTSUPP.
    @Test func fallocateGrowsOrReserves() throws {
        let volume = try MountedVolume()
        defer { volume.unmount() }
        try volume.mount()
        let fd = open(volume.mountPoint + "/space.bin", O_RDWR | O_CREAT, 0o600)
        defer { close(fd) }
        #expect(pwrite(fd, "abc", 3, 0) == 3)
        #expect(CLinux_fallocate(fd, 0, 0, 100_000) == 0)
        var info = stat()
        #expect(fstat(fd, &info) == 0 && info.st_size == 100_000)
        var bytes = [UInt8](repeating: 1, count: 100_000)
        #expect(pread(fd, &bytes, bytes.count, 0) == 100_000)
        #expect(bytes[0..<3] == [97, 98, 99] && bytes[3...].allSatisfy { $0 == 0 })
        #expect(CLinux_fallocate(fd, CLinux_FALLOC_FL_KEEP_SIZE, 0, 1_000_000) == 0)
        #expect(fstat(fd, &info) == 0 && info.st_size == 100_000)
        // The backing file still decodes as a 100 000-byte file, its blocks reserved beyond.
        var backing = stat()
        #expect(stat(volume.cipher + "/space.bin", &backing) == 0 && backing.st_blocks * 512 >= 1_000_000)
        let punchHole: Int32 = 0x02 | CLinux_FALLOC_FL_KEEP_SIZE
        #expect(CLinux_fallocate(fd, punchHole, 0, 4096) == -1 && errno == EOPNOTSUPP)
        // posix_fallocate falls back to writing where fallocate is refused; either way, zeros.
        #expect(posix_fallocate(fd, 200_000, 10) == 0)
        #expect(fstat(fd, &info) == 0 && info.st_size == 200_010)
    }

    /// The mount asks for 1 MiB writes and, as root, widens the kernel's read-ahead window to
    /// 4 MiB (after FUSE's init, which would otherwise cap it at 128 KiB).
    @Test func requestSizesAreTuned() throws {
        let volume = try MountedVolume()
        defer { volume.unmount() }
        try volume.mount()
        #expect(volume.logSays("max_write 1048576"))
        guard getuid() == 0 else { return }
        let mountinfo = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        var device: String?
        for line in mountinfo.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count > 4 && fields[4] == volume.mountPoint { device = String(fields[2]) }
        }
        let bdi = try #require(device)
        let deadline = Date().addingTimeInterval(30)
        var window = ""
        while Date() < deadline {
            window = (try? String(contentsOfFile: "/sys/class/bdi/\(bdi)/read_ahead_kb", encoding: .utf8)) ?? ""
            if window == "4096\n" { break }
            usleep(50_000)
        }
        #expect(window == "4096\n")
    }

    /// On a sparse volume (`kmsfs init --sparse`), growing a file to 10 GiB with ftruncate
    /// writes no 10 GiB: the backing file stays sparse (a few chunks allocated), reads of the
    /// hole are zeros, and shrinking it back works.
    @Test func truncateUpIsSparse() throws {
        let volume = try MountedVolume(holes: .sparse)
        defer { volume.unmount() }
        try volume.mount()
        let path = volume.mountPoint + "/huge.bin"
        let fd = open(path, O_RDWR | O_CREAT, 0o600)
        defer { close(fd) }
        #expect(pwrite(fd, "head", 4, 0) == 4)
        let tenGiB: off_t = 10 << 30
        #expect(ftruncate(fd, tenGiB) == 0)
        var info = stat(), backing = stat()
        #expect(fstat(fd, &info) == 0 && info.st_size == tenGiB)
        #expect(stat(volume.cipher + "/huge.bin", &backing) == 0 && backing.st_size > tenGiB)
        #expect(backing.st_blocks * 512 < 1 << 20, "allocated \(backing.st_blocks * 512) bytes")
        var middle = [UInt8](repeating: 1, count: 100_000)
        #expect(pread(fd, &middle, middle.count, 5 << 30) == 100_000 && middle.allSatisfy { $0 == 0 })
        var tail = [UInt8](repeating: 1, count: 10)
        #expect(pread(fd, &tail, 10, tenGiB - 5) == 5 && tail[0..<5].allSatisfy { $0 == 0 })
        #expect(ftruncate(fd, 4) == 0)
        var head = [UInt8](repeating: 0, count: 10)
        #expect(pread(fd, &head, 10, 0) == 4 && Array(head[0..<4]) == Array("head".utf8))
    }

    /// mmap, shared and writable: stores through the mapping reach the backing file (encrypted)
    /// and read back after the mapping is gone and after a remount.
    @Test func sharedWritableMapping() throws {
        let volume = try MountedVolume()
        defer { volume.unmount() }
        try volume.mount()
        let path = volume.mountPoint + "/mapped.bin"
        let size = 3 * 16384 + 100
        let fd = open(path, O_RDWR | O_CREAT, 0o600)
        #expect(fd >= 0 && ftruncate(fd, off_t(size)) == 0)
        let map = try #require(mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0))
        #expect(map != MAP_FAILED)
        let bytes = map.bindMemory(to: UInt8.self, capacity: size)
        for i in stride(from: 0, to: size, by: 7) { bytes[i] = UInt8(truncatingIfNeeded: i / 7 + 1) }
        #expect(msync(map, size, MS_SYNC) == 0)
        #expect(munmap(map, size) == 0)
        close(fd)
        let expected = (0..<size).map { $0 % 7 == 0 ? UInt8(truncatingIfNeeded: $0 / 7 + 1) : 0 }
        #expect(FileManager.default.contents(atPath: path).map(Array.init) == expected)
        volume.unmount()
        try volume.mount()
        let reader = open(path, O_RDONLY)
        defer { close(reader) }
        let readMap = try #require(mmap(nil, size, PROT_READ, MAP_SHARED, reader, 0))
        #expect(Array(UnsafeBufferPointer(start: readMap.bindMemory(to: UInt8.self, capacity: size), count: size)) == expected)
        munmap(readMap, size)
    }
}
