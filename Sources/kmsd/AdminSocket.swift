import CLinux
import Foundation
import KMSEngine
import KMSFSCrypto
#if canImport(Glibc)
import Glibc
#endif

/// The running kmsd's door for `kmsd admin`: a Unix socket beside the store (mode 0600 from the
/// moment it has its name), one JSON ``AdminRequest`` per connection, one JSON answer.
///
/// Who may connect is decided by the file system — the socket's mode and the store directory's
/// — as it is for the store itself: whoever may use the socket could open the store with the
/// root key anyway. The peer's user ID is checked again (SO_PEERCRED) as defence in depth, and
/// each command is audited like any other change (principal `kmsd-admin`).
final class AdminSocket: @unchecked Sendable {
    /// The largest request read (a seed file with its keys' material fits many times over).
    static let maximumRequestBytes = 4 << 20
    /// A connection must deliver its request within this time; it holds up no other work but
    /// the next admin command.
    static let requestTimeoutSeconds = 10

    let path: String
    private let fd: Int32
    private let engine: KMSEngine
    private let stopped = DispatchSemaphore(value: 0)

    /// Binds `path` (replacing a socket left by a kmsd that died) and starts serving.
    init(path: String, engine: KMSEngine) throws {
        guard path.utf8.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) else {
            throw CommandFailure("the admin socket path \(path) is too long for a Unix socket (107 bytes at most): set --admin-socket")
        }
        self.path = path
        self.engine = engine
        let directory = (path as NSString).deletingLastPathComponent
        var info = stat()
        if stat(directory.isEmpty ? "." : directory, &info) == 0, info.st_mode & 0o022 != 0 {
            print("kmsd: WARNING: the admin socket's directory \(directory) is writable by others, who could put a socket of "
                  + "their own in its place; keep the store (or --admin-socket) in a directory only kmsd's user can write")
        }
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw CommandFailure("cannot make the admin socket: \(String(cString: strerror(errno)))") }
        do {
            try bindPrivately()
        } catch {
            close(fd)
            throw error
        }
        Thread.detachNewThread { [self] in serve() }
    }

    /// Stops serving and removes the socket.
    func stop() {
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
        stopped.wait()
        close(fd)
        unlink(path)
    }

    /// Binds in a fresh 0700 directory beside `path`, sets 0600, then renames into place: the
    /// name never points at a socket with a wider mode, whatever the umask.
    private func bindPrivately() throws {
        let directory = (path as NSString).deletingLastPathComponent
        var template = Array(((directory.isEmpty ? "." : directory) + "/.kmsd-admin-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw CommandFailure("cannot make a directory for the admin socket beside \(path): \(String(cString: strerror(errno)))")
        }
        let privateDirectory = String(cString: made)
        let temporary = privateDirectory + "/socket"
        defer {
            unlink(temporary)
            rmdir(privateDirectory)
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { bytes in
            for (index, byte) in temporary.utf8.prefix(bytes.count - 1).enumerated() { bytes[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, chmod(temporary, 0o600) == 0, listen(fd, 8) == 0 else {
            throw CommandFailure("cannot bind the admin socket \(temporary): \(String(cString: strerror(errno)))")
        }
        // Only a socket is replaced: a file of another kind at `path` is an operator's mistake.
        var existing = stat()
        if lstat(path, &existing) == 0, (existing.st_mode & S_IFMT) != S_IFSOCK {
            throw CommandFailure("\(path) exists and is not a socket: remove it or set --admin-socket")
        }
        guard rename(temporary, path) == 0 else {
            throw CommandFailure("cannot put the admin socket at \(path): \(String(cString: strerror(errno)))")
        }
    }

    private func serve() {
        defer { stopped.signal() }
        while true {
            let connection = accept(fd, nil, nil)  // kmsd starts no programs: no CLOEXEC needed
            if connection < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return  // shut down
            }
            handle(connection)
            close(connection)
        }
    }

    private func handle(_ connection: Int32) {
        var pid: Int32 = 0, uid: UInt32 = 0
        guard CLinux_peer_credentials(connection, &pid, &uid) == 0, Self.admits(uid: uid) else {
            print("kmsd: admin socket: refused a connection from user \(uid) (process \(pid))")
            fflush(nil)
            return
        }
        var timeout = timeval(tv_sec: Self.requestTimeoutSeconds, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request = [UInt8]()
        defer { request.withUnsafeMutableBytes(SecretBytes.wipe) }  // may hold secrets and key material
        guard Self.readAll(connection, into: &request) else { return }
        var answer: AdminAnswer
        do {
            let command = try JSONDecoder().decode(AdminRequest.self, from: Data(request))
            answer = AdminAnswer(output: try command.perform(on: engine), error: nil)
        } catch let error as DecodingError {
            answer = AdminAnswer(output: nil, error: "not an admin request this kmsd knows: \(error)")
        } catch {
            answer = AdminAnswer(output: nil, error: "\(error)")
        }
        var bytes = Array((try? JSONEncoder().encode(answer)) ?? Data())
        defer { bytes.withUnsafeMutableBytes(SecretBytes.wipe) }  // a new access key's secret
        _ = Self.writeAll(connection, bytes)
    }

    /// Root and kmsd's own user; inside a user namespace (systemd's PrivateUsers=) also the
    /// overflow user, which is how root outside it is seen — the socket's mode has admitted it.
    static func admits(uid: UInt32) -> Bool {
        uid == 0 || uid == geteuid() || (userNamespaceOverflowUID == uid)
    }

    /// The overflow user ID if kmsd runs in a user namespace (its uid_map is not the identity).
    static let userNamespaceOverflowUID: UInt32? = {
        let map = (try? String(contentsOfFile: "/proc/self/uid_map", encoding: .utf8)) ?? ""
        let fields = map.split(whereSeparator: \.isWhitespace)
        guard fields.count >= 3, fields[0...2] != ["0", "0", "4294967295"] else { return nil }
        guard let text = try? String(contentsOfFile: "/proc/sys/kernel/overflowuid", encoding: .utf8),
              let value = UInt32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { return 65534 }
        return value
    }()

    /// Reads until end of file (the client shuts its side down after the request).
    static func readAll(_ fd: Int32, into bytes: inout [UInt8]) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        defer { chunk.withUnsafeMutableBytes(SecretBytes.wipe) }
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count == 0 { return true }
            if count < 0 {
                if errno == EINTR { continue }
                return false
            }
            guard bytes.count + count <= maximumRequestBytes else { return false }
            bytes.append(contentsOf: chunk[..<count])
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += count
        }
        return true
    }

    /// Sends `request` to the kmsd serving at `path` and returns its answer, or nil if none
    /// serves there (no socket, or one left by a kmsd that has stopped). The server must be
    /// root or the owner of the store (`storeOwner`): a socket planted by anyone else — in a
    /// directory others can write — gets no request, and with it no secret.
    static func send(_ request: AdminRequest, to path: String, storeOwner: uid_t?) throws -> AdminAnswer? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        guard path.utf8.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { bytes in
            for (index, byte) in path.utf8.enumerated() { bytes[index] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            if errno == ENOENT || errno == ECONNREFUSED { return nil }
            throw CommandFailure("cannot reach kmsd's admin socket \(path): \(String(cString: strerror(errno)))")
        }
        var pid: Int32 = 0, uid: UInt32 = 0
        guard CLinux_peer_credentials(fd, &pid, &uid) == 0, uid == 0 || uid == storeOwner else {
            throw CommandFailure("the admin socket \(path) is served by user \(uid) (process \(pid)), neither root nor the store's owner: "
                                 + "not sending it anything (a socket planted beside the store?)")
        }
        var bytes = Array(try JSONEncoder().encode(request))
        defer { bytes.withUnsafeMutableBytes(SecretBytes.wipe) }
        guard writeAll(fd, bytes), Glibc.shutdown(fd, Int32(SHUT_WR)) == 0 else {
            throw CommandFailure("kmsd's admin socket \(path) closed before taking the request")
        }
        var answer = [UInt8]()
        defer { answer.withUnsafeMutableBytes(SecretBytes.wipe) }
        guard readAll(fd, into: &answer), !answer.isEmpty else {
            throw CommandFailure("kmsd at \(path) gave no answer (is this user root or kmsd's own?)")
        }
        return try JSONDecoder().decode(AdminAnswer.self, from: Data(answer))
    }
}

/// What a running kmsd answers an ``AdminRequest``: the text to print, or the error.
struct AdminAnswer: Codable {
    var output: String?
    var error: String?
}
