import Foundation
import KMSFSCrypto

/// The 256-bit key that seals every key's material in the store.
///
/// It never lives in the database. It is read from a file, an inherited file descriptor, or a
/// systemd credential (`$CREDENTIALS_DIRECTORY/<name>`, from LoadCredential= or
/// LoadCredentialEncrypted=), as 32 raw bytes or 64 hex digits (a trailing newline is allowed).
public struct RootKey: Sendable {
    /// The key itself: for the engine, and for the volume that re-protects it (`kmsfs protect`).
    package let key: SecretBytes
    private let sealer: AESGCMContextPool

    public enum Source: Sendable, Equatable {
        case file(String)
        case fileDescriptor(Int32)
        case credential(String)
    }

    public init(_ key: SecretBytes) {
        precondition(key.count == 32, "a root key is 32 bytes")
        self.key = key
        self.sealer = AESGCMContextPool(key: key, maximumIdle: 4)
    }

    /// Loads the root key from `source`.
    /// - Throws: ``KMSError`` (`KMSInternalException`) naming the source when it is missing or malformed.
    public init(loading source: Source) throws {
        var raw: [UInt8]
        switch source {
        case let .file(path):
            guard let data = FileManager.default.contents(atPath: path) else {
                throw KMSError(.internalError, "root key file \(path) cannot be read")
            }
            raw = Array(data)
        case let .fileDescriptor(fd):
            raw = try Self.readAll(fd: fd)
        case let .credential(name):
            guard let directory = ProcessInfo.processInfo.environment["CREDENTIALS_DIRECTORY"] else {
                throw KMSError(.internalError, "CREDENTIALS_DIRECTORY is not set: no systemd credential \(name)")
            }
            guard let data = FileManager.default.contents(atPath: directory + "/" + name) else {
                throw KMSError(.internalError, "systemd credential \(name) cannot be read")
            }
            raw = Array(data)
        }
        defer { raw.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        self.init(try Self.decode(&raw))
    }

    /// The key from its stored form (32 raw bytes, or 64 hex digits and a line break); `raw`
    /// is left for the caller to wipe.
    public init(decoding raw: inout [UInt8]) throws {
        self.init(try Self.decode(&raw))
    }

    /// A name for the key that says nothing of it: 16 hex digits of `HKDF(key, "kmsd root key
    /// identifier")`, so that operators can tell which key a store is under.
    public var identifier: String {
        (try? HKDF.sha256(inputKeyMaterial: key, info: Array("kmsd root key identifier".utf8), outputByteCount: 8))
            .map { $0.withUnsafeBytes { hex($0) } } ?? "?"
    }

    /// Every byte the same (a zeroed or filled buffer): no key to seal a store under.
    public var isDegenerate: Bool {
        key.withUnsafeBytes { bytes in bytes.allSatisfy { $0 == bytes[0] } }
    }

    /// A new random root key, for `kmsd init` and tests.
    public static func generate() throws -> RootKey { RootKey(try SecretBytes.random(count: 32)) }

    /// The key as 64 hex digits and a newline: the form `init` writes to a 0600 file.
    public func hexEncoded() -> [UInt8] {
        key.withUnsafeBytes { Array(hex($0).utf8) } + [0x0a]
    }

    private static func decode(_ raw: inout [UInt8]) throws -> SecretBytes {
        // Exactly 32 bytes is a raw key, whatever its last byte is; only the hex form may end
        // with a line break (a raw key ending in 0x0a once lost that byte here).
        if raw.count == 32 { return SecretBytes(copying: raw) }
        while let last = raw.last, last == 0x0a || last == 0x0d { raw.removeLast() }
        guard raw.count == 64 else {
            throw KMSError(.internalError, "a root key must be 32 raw bytes or 64 hex digits (found \(raw.count) bytes)")
        }
        var bytes = [UInt8](repeating: 0, count: 32)
        defer { bytes.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        for i in 0..<32 {
            guard let high = hexDigitValue(raw[2 * i]), let low = hexDigitValue(raw[2 * i + 1]) else {
                throw KMSError(.internalError, "a root key in hex must contain only hex digits")
            }
            bytes[i] = high << 4 | low
        }
        return SecretBytes(copying: bytes)
    }

    private static func readAll(fd: Int32) throws -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw KMSError(.internalError, "cannot read the root key from file descriptor \(fd)") }
            if n == 0 { break }
            result += buffer[0..<n]
            guard result.count <= 1024 else { throw KMSError(.internalError, "root key input is too long") }
        }
        buffer.withUnsafeMutableBytes { SecretBytes.wipe($0) }
        return result
    }

    /// Seals key material: `nonce ‖ ciphertext ‖ tag` with additional data `label ‖ 0 ‖ u32 version`.
    /// The material goes from its secret buffer straight into the cipher, never through an array.
    func seal(_ material: SecretBytes, label: String, version: UInt32) throws -> [UInt8] {
        let n = AESGCM.nonceByteCount
        var output = [UInt8](repeating: 0, count: n + material.count + AESGCM.tagByteCount)
        let aad = Self.aad(label, version)
        try output.withUnsafeMutableBytes { out in
            try SecureRandom.fill(UnsafeMutableRawBufferPointer(rebasing: out[0..<n]))
            try sealer.withContext { context in
                try material.withUnsafeBytes { plain in
                    try aad.withUnsafeBytes { aad in
                        try context.seal(
                            nonce: UnsafeRawBufferPointer(rebasing: out[0..<n]), additionalData: aad, plaintext: plain,
                            ciphertext: UnsafeMutableRawBufferPointer(rebasing: out[n..<n + plain.count]),
                            tag: UnsafeMutableRawBufferPointer(rebasing: out[(n + plain.count)...]))
                    }
                }
            }
        }
        return output
    }

    /// Opens what ``seal(_:label:version:)`` made, straight into a new secret.
    /// - Throws: `CryptoError.authenticationFailure` if the root key or the label/version differ.
    func open(_ sealed: [UInt8], label: String, version: UInt32) throws -> SecretBytes {
        let n = AESGCM.nonceByteCount, t = AESGCM.tagByteCount
        // What seal made of empty material is n + t bytes: it opens too.
        guard sealed.count >= n + t else { throw CryptoError.authenticationFailure }
        let aad = Self.aad(label, version)
        return try SecretBytes(count: sealed.count - n - t) { (plain) throws in
            try sealer.withContext { context in
                try sealed.withUnsafeBytes { sealed in
                    try aad.withUnsafeBytes { aad in
                        try context.open(
                            nonce: UnsafeRawBufferPointer(rebasing: sealed[0..<n]), additionalData: aad,
                            ciphertext: UnsafeRawBufferPointer(rebasing: sealed[n..<sealed.count - t]),
                            tag: UnsafeRawBufferPointer(rebasing: sealed[(sealed.count - t)...]), plaintext: plain)
                    }
                }
            }
        }
    }

    private static func aad(_ label: String, _ version: UInt32) -> [UInt8] {
        var bytes = Array(label.utf8) + [0]
        bytes.appendUInt32(version)
        return bytes
    }
}
