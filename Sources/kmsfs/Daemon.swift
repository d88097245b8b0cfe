import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Background mode for `kmsfs mount`, as mount(8) and fstab expect of a FUSE helper: the command
/// returns once the volume is mounted (status 0) or has failed (status 1 and the reason), and the
/// daemon lives on detached from the terminal.
///
/// It forks before any thread exists (the key service and libfuse start theirs afterwards, in
/// the child), so nothing is lost across fork; the child reports back through a pipe.
enum Daemon {
    /// The child's line back to the waiting parent.
    struct Notifier {
        let fd: Int32

        /// The mount is up: detach from the terminal (keeping standard error when it is the
        /// log file) and let the parent exit 0.
        func ready(keepStandardError: Bool = false) {
            let null = open("/dev/null", O_RDWR)
            if null >= 0 {
                for target in [STDIN_FILENO, STDOUT_FILENO] + (keepStandardError ? [] : [STDERR_FILENO]) { dup2(null, target) }
                if null > STDERR_FILENO { close(null) }
            }
            _ = chdir("/")
            send("ok")
        }

        /// The mount failed: the parent prints `message` and exits 1.
        func fail(_ message: String) { send("error: " + message) }

        private func send(_ message: String) {
            let bytes = Array(message.utf8)
            _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
    }

    /// Forks. The parent waits for the child's word and exits with it (never returns); the child
    /// starts a new session and returns its notifier.
    static func detach(announce: String? = nil) throws -> Notifier {
        let threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? 1
        guard threads == 1 else { throw DaemonError("cannot go to the background with \(threads) threads running; use -f") }
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw DaemonError("pipe: \(String(cString: strerror(errno)))") }
        switch fork() {
        case -1:
            throw DaemonError("fork: \(String(cString: strerror(errno)))")
        case 0:
            close(pipeFDs[0])
            _ = fcntl(pipeFDs[1], F_SETFD, FD_CLOEXEC)
            _ = setsid()
            return Notifier(fd: pipeFDs[1])
        default:
            close(pipeFDs[1])
            var reply: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = read(pipeFDs[0], &buffer, buffer.count)
                if count > 0 { reply += buffer[0..<count]; continue }
                if count < 0 && errno == EINTR { continue }
                break
            }
            let text = String(decoding: reply, as: UTF8.self)
            if text == "ok" {
                if let announce { FileHandle.standardError.write(Data((announce + "\n").utf8)) }
                exit(0)
            }
            let reason = text.hasPrefix("error: ") ? String(text.dropFirst(7)) : "the mount daemon exited before mounting"
            FileHandle.standardError.write(Data("kmsfs mount: \(reason)\n".utf8))
            exit(1)
        }
    }
}

struct DaemonError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
