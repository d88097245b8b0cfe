import ArgumentParser
import Dispatch
import Foundation
import KMSFSCrypto
import KMSKeyStores
import KMSServer

/// `kmsd xks-proxy`: the AWS External Key Store Proxy API in front of a PKCS#11 token — the
/// external key manager of kmsd's (or AWS KMS's) EXTERNAL_KEY_STORE custom key stores.
struct XKSProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xks-proxy",
        abstract: "Serve the AWS XKS proxy API in front of a PKCS#11 token, or make keys in it.",
        subcommands: [Serve.self, CreateKey.self]
    )

    struct TokenOptions: ParsableArguments {
        @Option(help: "The token's PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so).")
        var pkcs11Module: String
        @Option(help: "The token's label.")
        var tokenLabel: String
        @Option(help: "A file holding the token user's PIN (mode 0600 or stricter).")
        var pinFile: String

        func open() throws -> PKCS11Token {
            var pin = try SecretFile.read(pinFile, what: "PIN file")
            while let last = pin.last, last == 0x0a || last == 0x0d { pin.removeLast() }
            do {
                return try PKCS11Token(modulePath: pkcs11Module, tokenLabel: tokenLabel, pin: SecretBytes(wiping: &pin))
            } catch {
                throw CommandFailure("cannot open the token \(tokenLabel): \(error)")
            }
        }
    }

    struct Serve: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Serve the XKS proxy API until SIGTERM.")
        @OptionGroup var token: TokenOptions
        @Option(help: "Where to listen: tls://HOST:PORT, or tcp://127.0.0.1:PORT for a loopback test.")
        var listen: String
        @Option(help: "TLS certificate chain (PEM).") var tlsCertificate: String?
        @Option(help: "TLS private key (PEM).") var tlsKey: String?
        @Option(help: "The URI path prefix, ending in /kms/xks/v1 (the store's XksProxyUriPath).")
        var uriPath: String = "/kms/xks/v1"
        @Option(help: "A file of accepted credentials, one 'ACCESS_KEY_ID SECRET' per line (mode 0600 or stricter).")
        var credentialsFile: String

        func run() throws {
            try ProcessHardening.disableCoreDumps()
            _ = ProcessHardening.lockKeyMemory(byteCount: 1 << 20)
            guard uriPath.hasSuffix("/kms/xks/v1"), uriPath.hasPrefix("/") else { throw ValidationError("--uri-path ends in /kms/xks/v1") }
            let (listener, _) = try ServeCommand.parse(listen, certificate: tlsCertificate, key: tlsKey)
            if case let .tcp(host, _) = listener, !["127.0.0.1", "::1", "localhost"].contains(host) {
                throw ValidationError("a tcp:// XKS proxy listens on loopback only; use tls:// elsewhere")
            }
            var text = try SecretFile.read(credentialsFile, what: "credentials file")
            defer { text.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
            var credentials: [String: String] = [:]
            for line in String(decoding: text, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count == 2 else { throw CommandFailure("\(credentialsFile): each line is 'ACCESS_KEY_ID SECRET'") }
                credentials[String(fields[0])] = String(fields[1])
            }
            guard !credentials.isEmpty else { throw CommandFailure("\(credentialsFile) holds no credential") }
            let service = XKSProxyService(token: try token.open(), uriPath: uriPath, credentials: credentials)
            let server = try XKSProxyServer(service: service, listener: listener)
            print("kmsd xks-proxy: token \(token.tokenLabel), \(credentials.count) credential(s), serving \(server.boundAddress)\(uriPath)")
            print("kmsd xks-proxy: ready")
            fflush(nil)
            waitForTermination()
            server.shutdown()
            print("kmsd xks-proxy: stopped")
        }
    }

    struct CreateKey: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make an AES-256 key in the token (sensitive, never extractable).")
        @OptionGroup var token: TokenOptions
        @Argument(help: "The key's label: its XKS key ID ([A-Za-z0-9-._], 1 to 128).") var label: String

        func run() throws {
            guard XKSProtocol.isKeyID(label) else { throw ValidationError("a key ID is 1 to 128 of [A-Za-z0-9-._]") }
            let opened = try token.open()
            defer { opened.close() }
            do { try opened.generateKey(label: label) } catch { throw CommandFailure("cannot make key \(label): \(error)") }
            print(label)
        }
    }
}

/// A file holding a secret: refused if others may read it.
enum SecretFile {
    static func read(_ path: String, what: String) throws -> [UInt8] {
        var info = stat()
        guard stat(path, &info) == 0 else { throw CommandFailure("cannot read the \(what) \(path): \(String(cString: strerror(errno)))") }
        guard info.st_mode & 0o077 == 0 else { throw CommandFailure("the \(what) \(path) is readable by others (mode \(String(info.st_mode & 0o777, radix: 8))); make it 0600") }
        guard let data = FileManager.default.contents(atPath: path) else { throw CommandFailure("cannot read the \(what) \(path)") }
        return Array(data)
    }
}
