import Foundation
import KMSFSCrypto
import KMSFSVolume
#if canImport(Glibc)
import Glibc
#endif

/// Passphrases for a root key: from a file (fstab, systemd: `%d/name` with LoadCredential=) or
/// asked on the controlling terminal with echo off. Each goes straight into a ``SecretBytes``.
enum Passphrase {
    /// Whether a terminal is there to ask on.
    static var canAsk: Bool { isatty(STDIN_FILENO) == 1 }

    /// The longest passphrase taken, from a file or the terminal alike.
    static let maximumByteCount = 1024

    /// The whole file, less one trailing line break (`\n` or `\r\n`): a line of text or a
    /// binary key file, never cut at an inner line break. The file must be private to its owner
    /// (the caller or root), as ssh wants its keys.
    static func read(file path: String) throws -> SecretBytes {
        var bytes = try GuardedFile.read(path, what: "the passphrase file", maximumSize: maximumByteCount + 2, access: .ownerOnly)
        defer { bytes.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        var count = bytes.count
        if count > 0 && bytes[count - 1] == 0x0a { count -= 1 }
        if count > 0 && bytes[count - 1] == 0x0d && count < bytes.count { count -= 1 }
        guard count > 0 else { throw CommandFailure("the passphrase file \(path) is empty") }
        guard count <= maximumByteCount else { throw CommandFailure("the passphrase in \(path) is longer than \(maximumByteCount) bytes") }
        return SecretBytes(copying: bytes[0..<count])
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
        var line = [UInt8](repeating: 0, count: maximumByteCount + 1)
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
        guard count <= maximumByteCount else { throw CommandFailure("a passphrase is at most \(maximumByteCount) bytes") }
        return SecretBytes(copying: line[0..<count])
    }
}
