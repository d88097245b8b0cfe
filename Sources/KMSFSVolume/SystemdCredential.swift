import Dispatch
import Foundation
import KMSEngine
import KMSFSCrypto
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A root key kept as a systemd encrypted credential: `systemd-creds encrypt` seals it with the
/// TPM2 where there is one — then a copy of the disk does not decrypt it — else with the
/// machine's `/var/lib/systemd/credential.secret`, which a copy of the whole disk carries.
///
/// A unit hands it over decrypted with `LoadCredentialEncrypted=NAME` (found in
/// /etc/credstore.encrypted); outside a unit, root runs `systemd-creds decrypt` on it.
enum SystemdCredential {
    /// How long systemd-creds may take (a TPM can be slow; a planted FIFO must not hang a mount).
    static let timeout: TimeInterval = 60

    /// Whether this machine seals credentials with a TPM2 (`systemd-creds has-tpm2`).
    static var hasTPM2: Bool {
        (try? run(["has-tpm2", "--quiet"], input: [], readOutput: { _ in })) != nil
    }

    static func write(_ rootKey: RootKey, name: String, store: String) throws {
        try checkName(name)
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let target = (store as NSString).appendingPathComponent(name)
        guard !FileManager.default.fileExists(atPath: target) else {
            throw VolumeError.rootKey("\(target) exists: choose another credential name")
        }
        var hex = rootKey.hexEncoded()
        defer { hex.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        // systemd-creds creates the file with the process's umask: none of it for others.
        let previous = umask(0o077)
        defer { umask(previous) }
        try run(["encrypt", "--name=\(name)", "-", target], input: hex) { _ in }
    }

    static func read(name: String, store: String) throws -> RootKey {
        try checkName(name)
        if let directory = ProcessInfo.processInfo.environment["CREDENTIALS_DIRECTORY"],
           FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent(name)) {
            let fd = try GuardedFile.open((directory as NSString).appendingPathComponent(name), what: "the credential",
                                          maximumSize: 1024, access: .ownerOnly)
            defer { close(fd) }
            do { return try RootKey(loading: .fileDescriptor(fd)) } catch {
                throw VolumeError.rootKey("the credential \(name) holds no root key")
            }
        }
        let source = (store as NSString).appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: source) else {
            throw VolumeError.rootKey("the root key is the systemd credential \(name), but neither $CREDENTIALS_DIRECTORY nor \(store) has it")
        }
        // Only a sealed credential root (or this user) made is handed to systemd-creds.
        close(try GuardedFile.open(source, what: "the sealed credential", maximumSize: 64 << 10, access: .ownerWritable))
        var key: RootKey?
        try run(["decrypt", "--name=\(name)", source, "-"], input: []) { output in
            key = try? RootKey(loading: .fileDescriptor(output))
        }
        guard let key else { throw VolumeError.rootKey("systemd-creds decrypt gave no valid root key for \(name)") }
        return key
    }

    private static func checkName(_ name: String) throws {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != "..", name.utf8.count <= 255 else {
            throw VolumeError.rootKey("a credential name is a plain file name, not \(name)")
        }
    }

    /// Runs systemd-creds with `input` on its standard input; `readOutput` reads its standard
    /// output from a descriptor (secrets never pass through a Foundation buffer), and whatever
    /// it leaves is drained. Killed after ``timeout``.
    private static func run(_ arguments: [String], input: [UInt8], readOutput: (Int32) throws -> Void) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/systemd-creds")
        process.arguments = arguments
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        do { try process.run() } catch {
            throw VolumeError.rootKey("cannot run systemd-creds (is systemd installed?): \(error)")
        }
        let watchdog = DispatchWorkItem { if process.isRunning { process.terminate(); kill(process.processIdentifier, SIGKILL) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
        defer { watchdog.cancel() }
        // Standard error is read on the side, so that neither pipe can fill and stall the child.
        let message = Mutex(Data())
        let errors = DispatchGroup()
        DispatchQueue.global().async(group: errors) { message.withLock { $0 = stderr.fileHandleForReading.readDataToEndOfFile() } }
        input.withUnsafeBytes { bytes in
            var done = 0
            while done < bytes.count {
                let n = Glibc.write(stdin.fileHandleForWriting.fileDescriptor, bytes.baseAddress! + done, bytes.count - done)
                if n <= 0 { break }
                done += n
            }
        }
        try? stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.fileDescriptor
        try readOutput(output)
        var sink = [UInt8](repeating: 0, count: 4096)
        while sink.withUnsafeMutableBytes({ Glibc.read(output, $0.baseAddress, $0.count) }) > 0 {}
        sink.withUnsafeMutableBytes { SecretBytes.wipe($0) }
        errors.wait()
        process.waitUntilExit()
        guard process.terminationStatus == 0, process.terminationReason == .exit else {
            let text = String(decoding: message.withLock { $0 }, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw VolumeError.rootKey("systemd-creds \(arguments[0]) failed: \(text.isEmpty ? "killed after \(Int(timeout)) s" : text)")
        }
    }
}
