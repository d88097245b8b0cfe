import Foundation
import KMSFSCrypto
#if canImport(Glibc)
import Glibc
#endif

/// Passphrases for a root key: from a file (fstab, systemd: `%d/name` with LoadCredential=) or
/// asked on the controlling terminal with echo off. Each goes straight into a ``SecretBytes``.
enum Passphrase {
    /// Whether a terminal is there to ask on.
    static var canAsk: Bool { isatty(STDIN_FILENO) == 1 }

    /// The file's first line (a trailing line break is not part of it).
    static func read(file path: String) throws -> SecretBytes {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CommandFailure("cannot read the passphrase file \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 4096)
        defer { bytes.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        var count = 0
        while count < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw CommandFailure("cannot read the passphrase file \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            count += n
        }
        guard count < bytes.count else { throw CommandFailure("the passphrase file \(path) is longer than 4 KiB") }
        let line = bytes[0..<count].firstIndex(where: { $0 == 0x0a || $0 == 0x0d }) ?? count
        guard line > 0 else { throw CommandFailure("the passphrase file \(path) is empty") }
        return SecretBytes(copying: bytes[0..<line])
    }

    /// Asks on the terminal; with `confirm`, twice, and the answers must agree.
    static func ask(_ prompt: String, confirm: Bool = false) throws -> SecretBytes {
        let first = try askOnce(prompt)
        if confirm {
            let second = try askOnce("Again: ")
            guard first == second else { throw CommandFailure("the passphrases differ") }
        }
        guard first.count > 0 else { throw CommandFailure("an empty passphrase protects nothing") }
        return first
    }

    private static func askOnce(_ prompt: String) throws -> SecretBytes {
        let tty = open("/dev/tty", O_RDWR | O_CLOEXEC)
        let input = tty >= 0 ? tty : STDIN_FILENO
        defer { if tty >= 0 { close(tty) } }
        _ = prompt.withCString { write(tty >= 0 ? tty : STDERR_FILENO, $0, strlen($0)) }
        var saved = termios()
        let hasTerminal = tcgetattr(input, &saved) == 0
        if hasTerminal {
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(input, TCSAFLUSH, &quiet)
        }
        defer {
            if hasTerminal { tcsetattr(input, TCSAFLUSH, &saved) }
            _ = write(tty >= 0 ? tty : STDERR_FILENO, "\n", 1)
        }
        var line = [UInt8](repeating: 0, count: 1024)
        defer { line.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        var count = 0
        while count < line.count {
            var byte: UInt8 = 0
            let n = Glibc.read(input, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            guard n == 1 else { break }
            if byte == 0x0a || byte == 0x0d { break }
            line[count] = byte
            count += 1
        }
        return SecretBytes(copying: line[0..<count])
    }
}
