import Foundation
import KMSEngine
import KMSFSCrypto
#if canImport(Glibc)
import Glibc
#endif

/// A root key kept as a systemd encrypted credential: `systemd-creds encrypt` seals it with the
/// TPM2 where there is one, else with the machine's `/var/lib/systemd/credential.secret` — either
/// way with something a copy of the disk's volume and store does not carry.
///
/// A unit hands it over decrypted with `LoadCredentialEncrypted=NAME` (found in
/// /etc/credstore.encrypted); outside a unit, root runs `systemd-creds decrypt` on it.
enum SystemdCredential {
    static func write(_ rootKey: RootKey, name: String, store: String) throws {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
            throw VolumeError.rootKey("a credential name is a plain file name, not \(name)")
        }
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
        if let directory = ProcessInfo.processInfo.environment["CREDENTIALS_DIRECTORY"],
           FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent(name)) {
            do { return try RootKey(loading: .credential(name)) } catch { throw VolumeError.rootKey("\(error)") }
        }
        let source = (store as NSString).appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: source) else {
            throw VolumeError.rootKey("the root key is the systemd credential \(name), but neither $CREDENTIALS_DIRECTORY nor \(store) has it")
        }
        var key: RootKey?
        try run(["decrypt", "--name=\(name)", source, "-"], input: []) { output in
            key = try? RootKey(loading: .fileDescriptor(output))
        }
        guard let key else { throw VolumeError.rootKey("systemd-creds decrypt gave no valid root key for \(name)") }
        return key
    }

    /// Runs systemd-creds with `input` on its standard input; `readOutput` reads its standard
    /// output from a descriptor (secrets never pass through a Foundation buffer).
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
        input.withUnsafeBytes { bytes in
            var done = 0
            while done < bytes.count {
                let n = Glibc.write(stdin.fileHandleForWriting.fileDescriptor, bytes.baseAddress! + done, bytes.count - done)
                if n <= 0 { break }
                done += n
            }
        }
        try? stdin.fileHandleForWriting.close()
        try readOutput(stdout.fileHandleForReading.fileDescriptor)
        let message = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw VolumeError.rootKey("systemd-creds \(arguments[0]) failed: \(message.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }
}
